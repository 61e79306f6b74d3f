"""MonitoringBudget: monitoring work kept to a share of the training time.

The budget's arithmetic is checked on a controlled clock against a hand computation; the
callbacks' use of it with a scripted budget (which epochs are allowed) against what they
write; and one real run with expensive histograms and tiny epochs against the invariant
``spent <= share * training + one work item``.
"""

import keras
import numpy as np
import pytest

from keras_recipes.callbacks import (
    GradientHistogram,
    MonitoringBudget,
    RunCheckpoint,
    WeightHistogram,
    latest_checkpoint,
)
from keras_recipes.callbacks import monitoring_budget as budget_module
from keras_recipes.callbacks.event_writer import read_histograms


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_allows_while_the_work_stays_within_its_share(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    budget = MonitoringBudget(0.1)
    budget.begin()
    clock.now = 10.0
    assert budget.allow("a")  # nothing measured yet
    budget.charge("a", 1.0)  # spent 1 s; training 10 - 1 = 9 s
    clock.now = 15.0  # training 14 s: 1 + 1 > 1.4
    assert not budget.allow("a")
    clock.now = 21.0  # training 20 s: 1 + 1 <= 2.0
    assert budget.allow("a")
    budget.charge("a", 0.5)  # its cost is now 0.5 s
    clock.now = 21.5  # training 19 s: 1.5 + 0.5 <= 1.9 (hand computation)
    assert budget.allow("a")
    assert budget.granted == {"a": 3} and budget.skipped == {"a": 1}
    assert budget.spent == 1.5
    # One cost per granted item: 1.0, 0.5, and the third one's so far (nothing charged yet).
    assert budget.work_costs == {"a": [1.0, 0.5, 0.0]}
    budget.charge("a", 0.25)  # e.g. its background write, after the epoch
    assert budget.work_costs == {"a": [1.0, 0.5, 0.25]}
    budget.end()


def test_prior_until_measured_and_forced_work(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    budget = MonitoringBudget(0.05)
    budget.begin()
    clock.now = 10.0  # 5% of 10 s = 0.5 s < the prior of 1 s
    assert not budget.allow("ckpt", prior=1.0)
    clock.now = 20.0  # 5% of 20 s = 1 s: the prior fits
    assert budget.allow("ckpt", prior=1.0)
    budget.charge("ckpt", 0.2)  # measured: 0.2 s; the prior no longer counts
    clock.now = 24.2  # training 24 s: 0.2 + 0.2 <= 1.2 (hand computation)
    assert budget.allow("ckpt", prior=100.0)
    budget.charge("ckpt", 2.0)  # spent 2.2; training 24 s: 2.2 + 2 > 1.2
    assert not budget.allow("ckpt")
    assert budget.allow("ckpt", force=True)  # the last checkpoint, whatever it costs
    assert budget.granted == {"ckpt": 3} and budget.skipped == {"ckpt": 2}
    assert budget.work_costs == {"ckpt": [0.2, 2.0, 0.0]}
    budget.end()


def test_one_time_work_is_spent_but_not_expected_again(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    budget = MonitoringBudget(0.1)
    budget.begin()
    clock.now = 10.0  # 10% of 10 s = 1 s < 0 + 0 + 2 (a compilation expected)
    assert not budget.allow("g", once=2.0)
    clock.now = 20.0  # 2 s >= 0 + 2
    assert budget.allow("g", once=2.0)
    budget.charge("g", 1.5, once=True)  # the compilation
    budget.charge("g", 0.1)  # the item itself
    assert budget.spent == 1.6 and budget.once_costs == {"g": 1.5}
    clock.now = 21.6  # training 20 s: 1.6 + 0.1 <= 2.0 (the compilation is not expected again)
    assert budget.allow("g")
    assert budget.work_costs == {"g": [0.1, 0.0]}
    budget.end()


def test_reserved_work_leaves_room_for_itself(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    budget = MonitoringBudget(0.1)
    budget.begin()
    budget.reserve("ckpt", 1.5)  # the last checkpoint, forced later
    clock.now = 10.0  # 10% of 10 s = 1 s < 1.5 reserved: nothing else fits
    assert not budget.allow("hist")
    clock.now = 20.0  # 2 s >= 1.5 + 0 (hist not measured yet)
    assert budget.allow("hist")
    budget.charge("hist", 0.4)  # spent 0.4; training 19.6 s: 0.4 + 1.5 + 0.4 > 1.96
    assert not budget.allow("hist")
    assert budget.expected("hist") == 0.4 and budget.expected("ckpt", prior=1.5) == 1.5
    assert budget.allow("ckpt", force=True)  # releases its reservation
    clock.now = 25.0  # training 24.6 s: 0.4 + 0 + 0.4 <= 2.46 (hand computation)
    assert budget.allow("hist")
    budget.end()


def test_owners_share_one_budget_and_none_allows_all(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "perf_counter", clock)
    budget = MonitoringBudget(0.5)
    budget.begin()
    budget.begin()  # a second callback of the same fit: the clock is not restarted
    clock.now = 4.0
    assert budget.allow("a") and budget.allow("b")
    budget.charge("a", 1.0)
    budget.charge("b", 1.0)  # spent 2; training 2: a's 1 more would give 3 > 1
    assert not budget.allow("a") and not budget.allow("b")
    budget.end()
    budget.end()
    budget.begin()  # a new fit starts afresh
    assert budget.spent == 0.0 and budget.granted == {}
    free = MonitoringBudget(None)
    free.begin()
    free.charge("a", 100.0)
    assert all(free.allow("a") for _ in range(3))


def test_timed_charges_the_jobs_cpu_time():
    budget = MonitoringBudget(0.05)
    budget.begin()
    job = budget.timed("w", lambda: float(np.sort(np.random.default_rng(0).random(10**6))[0]))
    assert 0.0 <= job() < 1e-5
    assert budget.spent > 0.0 and budget._cycle["w"] == budget.spent


@pytest.mark.parametrize("share", [0, 1.5, -0.1, True, float("nan")])
def test_bad_share_is_named(share):
    with pytest.raises(ValueError, match=r"argument `share`.*Received: share="):
        MonitoringBudget(share)


class _Scripted(MonitoringBudget):
    """Denies the calls of `deny` (0-based call index per owner kind)."""

    def __init__(self, deny):
        super().__init__(0.05)
        self.deny, self.calls, self.once, self.forced = deny, {}, [], {}

    def allow(self, owner, *, prior=None, force=False, once=0.0):
        kind = owner.split(":")[0]
        self.once.append(once)
        if force:
            self.forced.setdefault(kind, []).append(self.calls.get(kind, -1) + 1)
        n = self.calls[kind] = self.calls.get(kind, -1) + 1
        return force or n not in self.deny.get(kind, ())


X = np.random.default_rng(1).normal(size=(32, 4)).astype("float32")
Y = (X @ np.array([[1.0], [-2.0], [0.5], [1.5]], "float32")).astype("float32")


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, name="out")])
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    return model


def test_histograms_skip_the_denied_epochs(tmp_path, keras_backend):
    budget = _Scripted({"WeightHistogram": {1, 2}, "GradientHistogram": {0, 3}})
    grads = GradientHistogram(str(tmp_path / "g"), budget=budget, verbose=0)
    _model().fit(X, Y, batch_size=8, epochs=5, shuffle=False, verbose=0,
                 callbacks=[WeightHistogram(tmp_path / "w", budget=budget), grads])
    written = read_histograms(tmp_path / "w" / "train")
    kernel = next(v for k, v in written.items() if k.endswith("out/kernel/histogram"))
    steps = [s for s, _ in kernel]
    assert steps == [0, 3, 4]
    # Epoch 0 is asked with force=True: a fit's first gradient log is granted whatever the
    # budget (denying it would leave a short fit with no gradient log at all).
    assert grads.logged_steps == [0, 1, 2, 4]
    assert budget.forced == {"GradientHistogram": [0]}


def test_a_denied_gradient_log_costs_no_capture(tmp_path, keras_backend, monkeypatch):
    """The capture is the log's work: where the step to capture is chosen in Python (jax:
    a plain step beside the capturing one; torch: eager steps), a step whose log the
    budget denies copies no gradient; every copy is charged to the budget, beside the log's
    main-thread time and its bucketing in the writer's thread, and on jax so is the
    capturing step's compilation."""
    from keras_recipes.backend import gradient_capture

    copier = {"jax": (gradient_capture._JaxCapture, "_host_store"),
              "torch": (gradient_capture._TorchCapture, "_store_copies")}.get(keras_backend)
    if copier is None:
        pytest.skip("TensorFlow decides inside the compiled step (a tf.cond) what to copy")
    cls, name = copier
    stored = []
    copy = getattr(cls, name)

    def counting_copy(self, step, *args):
        stored.append(int(np.asarray(step)))
        return copy(self, step, *args)

    monkeypatch.setattr(cls, name, counting_copy)
    charges = []

    class Recording(_Scripted):
        def charge(self, owner, seconds, *, once=False):
            charges.append("compilation" if once else owner.split(":")[0])
            super().charge(owner, seconds, once=once)

    budget = Recording({"GradientHistogram": {1, 2}})
    grads = GradientHistogram(str(tmp_path / "g"), budget=budget, verbose=0)
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse",
                  jit_compile=keras_backend == "jax")  # jax: the split needs a jitted step
    model.fit(X, Y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[grads])
    assert grads.logged_steps == [0, 3]
    # 4 steps per epoch: the captured step is each epoch's last (iterations 4, 8, 12, 16)
    assert stored == [4, 16]
    assert budget.calls == {"GradientHistogram": 3}  # asked once per epoch (0-based)
    assert budget.forced == {"GradientHistogram": [0]}  # the fit's first log, in epoch 0
    if keras_backend == "jax":
        # The first capture compiles the capturing step: expected to take as long as the
        # plain step's first call (also a compilation), then charged as one-time work.
        assert budget.once[0] > 0 and budget.once[1:] == [0.0, 0.0, 0.0]
        assert list(budget.once_costs) == [grads._owner] and budget.once_costs[grads._owner] > 0
        first = ["GradientHistogram"] * 3 + ["compilation"]
    else:
        assert budget.once == [0.0] * 4 and budget.once_costs == {}
        first = ["GradientHistogram"] * 3
    # per log: the copy, the main thread, the writer (whose thread may come last)
    assert sorted(charges[:len(first)]) == sorted(first)
    assert charges[len(first):] == ["GradientHistogram"] * 3


def test_skipped_checkpoints_resume_exactly_and_keep_the_best_epoch(tmp_path, keras_backend):
    reference = _model()
    plain = RunCheckpoint(tmp_path / "plain", monitor="loss", verbose=0)
    reference.fit(X, Y, batch_size=8, epochs=6, shuffle=False, verbose=0, callbacks=[plain])

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 4:
                raise RuntimeError("interrupted")

    # Epochs 2 and 3 are not written (the loss falls: the best epoch is each new one).
    checkpoint = RunCheckpoint(tmp_path / "run", monitor="loss", verbose=0,
                               budget=_Scripted({"RunCheckpoint": {2, 3}}))
    with pytest.raises(RuntimeError, match="interrupted"):
        _model().fit(X, Y, batch_size=8, epochs=6, shuffle=False, verbose=0,
                     callbacks=[checkpoint, Interrupt()])
    checkpoint.wait_for_writes()
    assert latest_checkpoint(tmp_path / "run").name == "epoch-0001"
    resumed = RunCheckpoint(tmp_path / "run", monitor="loss", verbose=0,
                            budget=_Scripted({"RunCheckpoint": {0, 1}}))  # epochs 2, 3 again
    assert resumed.initial_epoch == 2
    model = _model()
    model.fit(X, Y, batch_size=8, epochs=6, shuffle=False, verbose=0, callbacks=[resumed])
    # the last epoch is written whatever the budget says
    assert latest_checkpoint(tmp_path / "run").name == "epoch-0005"
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert [h["epoch"] for h in resumed.history] == list(range(6))
    assert resumed.best["epoch"] == plain.best["epoch"]
    for a, b in zip(RunCheckpoint(tmp_path / "run").best_weights,
                    RunCheckpoint(tmp_path / "plain").best_weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_best_epoch_of_a_skipped_checkpoint_is_written_with_the_next_one(tmp_path,
                                                                         keras_backend):
    class Worse(keras.callbacks.Callback):  # epochs 2-4 report a worse loss than epoch 1
        def on_epoch_end(self, epoch, logs=None):
            if epoch >= 2:
                logs["loss"] = 1e6 + epoch

    model = _model()
    keep = []

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                keep.extend(np.array(w) for w in self.model.get_weights())

    checkpoint = RunCheckpoint(tmp_path / "run", monitor="loss", verbose=0,
                               budget=_Scripted({"RunCheckpoint": {1}}))  # epoch 1: best, skipped
    model.fit(X, Y, batch_size=8, epochs=5, shuffle=False, verbose=0,
              callbacks=[Keep(), Worse(), checkpoint])
    assert checkpoint.best["epoch"] == 1
    on_disk = RunCheckpoint(tmp_path / "run").best_weights
    for a, b in zip(on_disk, keep, strict=True):
        np.testing.assert_array_equal(a, b)


class _Recording(MonitoringBudget):
    """Keeps the cost of each granted work item (its charges until the next grant)."""

    def __init__(self, share):
        super().__init__(share)
        self.items: list[float] = []

    def allow(self, owner, **kwargs):
        ok = super().allow(owner, **kwargs)
        if ok:
            self.items.append(0.0)
        return ok

    def charge(self, owner, seconds):
        super().charge(owner, seconds)
        self.items[-1] += seconds


def test_expensive_histograms_on_tiny_epochs_stay_within_the_share(tmp_path, keras_backend):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1000),
                              keras.layers.Dense(1000), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    budget = _Recording(0.05)
    hist = WeightHistogram(tmp_path, budget=budget)
    model.fit(X[:4], Y[:4], batch_size=4, epochs=12, verbose=0, callbacks=[hist])
    owner = hist._owner
    assert budget.granted[owner] >= 1 and budget.skipped.get(owner, 0) >= 1
    assert budget.granted[owner] + budget.skipped[owner] == 12
    written = read_histograms(tmp_path / "train")
    assert {len(v) for v in written.values()} == {budget.granted[owner]}
    # A grant needs spent + (the previous item's cost, as charged so far) <= share x training:
    # the last item's cost, and the background part of the previous one not yet charged at
    # that grant, come on top (the writer has drained: on_train_end closed it).
    assert len(budget.items) == budget.granted[owner] and min(budget.items) > 0
    assert budget.spent == pytest.approx(sum(budget.items))
    assert budget.spent <= 0.05 * budget.training_seconds + 2 * max(budget.items) + 1e-3


def test_first_checkpoint_waits_for_its_prior_and_the_last_is_always_written(
        tmp_path, keras_backend, monkeypatch):
    from keras_recipes.callbacks import run_checkpoint as run_checkpoint_module

    # 1 byte/s: before one is measured, a checkpoint of these ~100 floats "costs" minutes.
    monkeypatch.setattr(run_checkpoint_module, "PRIOR_BYTES_PER_SECOND", 1.0)
    budget = MonitoringBudget(0.05)
    checkpoint = RunCheckpoint(tmp_path / "run", budget=budget)
    _model().fit(X, Y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[checkpoint])
    owner = checkpoint._owner
    assert budget.skipped[owner] == 3 and budget.granted[owner] == 1  # the last epoch only
    assert latest_checkpoint(tmp_path / "run").name == "epoch-0003"
    assert len(budget.work_costs[owner]) == 1 and budget.work_costs[owner][0] > 0
    # The finished run resumes with nothing left to train.
    again = RunCheckpoint(tmp_path / "run")
    history = _model().fit(X, Y, batch_size=8, epochs=4, shuffle=False, verbose=0,
                           callbacks=[again])
    assert history.epoch == []


def test_the_first_gradient_log_after_an_unfreeze_is_granted(tmp_path, keras_backend):
    """A budget that denies every log it may: the fit's first log and the first after the
    backbone unfreezes are granted (the backbone's gradients are logged at least once)."""
    from keras_recipes.callbacks import UnfreezeSchedule
    from keras_recipes.callbacks.event_writer import read_scalars
    from tests.applications.tiny import data, tiny_transfer_model

    x, y = data(16)
    model = tiny_transfer_model()  # the backbone frozen
    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="sparse_categorical_crossentropy")
    budget = _Scripted({"GradientHistogram": set(range(100))})
    grads = GradientHistogram(str(tmp_path), budget=budget, histograms=False, verbose=0)
    model.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0,
              callbacks=[UnfreezeSchedule(schedule={2: "all"}, verbose=0), grads])
    assert budget.calls == {"GradientHistogram": 4}  # asked in each epoch (0-based count)
    assert budget.forced == {"GradientHistogram": [0, 2]}
    assert grads.logged_steps == [0, 2]
    steps = {tag: [s for s, _ in v] for tag, v in read_scalars(tmp_path / "train").items()
             if tag.startswith("gradient_norm/") and tag != "gradient_norm/global"}
    backbone = {t: s for t, s in steps.items() if "/block" in t}
    head = {t: s for t, s in steps.items() if "/block" not in t}
    assert backbone and set(map(tuple, backbone.values())) == {(2,)}
    assert head and set(map(tuple, head.values())) == {(0, 2)}
