"""The recipes: everything task-specific (see :mod:`opsline.recipes.base` for the contract).

Nothing is imported here, so importing a recipe module stays cheap; the registry
(:mod:`opsline.recipes.registry`) imports the built-in recipes on first use.
"""
