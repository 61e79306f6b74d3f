"""keras_recipes.regularizers: public names are re-exported here explicitly."""

__all__: list[str] = []
