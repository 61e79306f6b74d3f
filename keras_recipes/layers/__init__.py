"""keras_recipes.layers: public names are re-exported here explicitly."""

__all__: list[str] = []
