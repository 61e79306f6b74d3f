"""A test callback: unfreezes one layer at one epoch, as UnfreezeSchedule does (tests only)."""

import keras


class UnfreezeAt(keras.callbacks.Callback):
    """At `epoch`: `layer` trainable, a new SGD(`learning_rate`) optimizer, the train function
    rebuilt: the three things ``UnfreezeSchedule`` does, without its other features."""

    def __init__(self, epoch, layer, learning_rate=0.1):
        super().__init__()
        self.epoch, self.layer, self.learning_rate = epoch, layer, learning_rate

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            model = self.model
            self.layer.trainable = True
            optimizer = keras.optimizers.SGD(self.learning_rate)
            optimizer.build(model.trainable_variables)
            model.optimizer = optimizer
            model.make_train_function(force=True)
