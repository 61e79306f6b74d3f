"""keras_recipes.models: public names are re-exported here explicitly."""

__all__: list[str] = []
