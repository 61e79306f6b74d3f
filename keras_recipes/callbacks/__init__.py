"""keras_recipes.callbacks: public names are re-exported here explicitly."""

__all__: list[str] = []
