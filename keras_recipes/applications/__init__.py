"""keras_recipes.applications: public names are re-exported here explicitly."""

__all__: list[str] = []
