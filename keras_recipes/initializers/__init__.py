"""keras_recipes.initializers: public names are re-exported here explicitly."""

__all__: list[str] = []
