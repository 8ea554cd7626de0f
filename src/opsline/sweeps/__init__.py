"""Resumable hyperparameter sweeps with Optuna: ``opsline sweep RECIPE --trials N``.

Module map: ``space`` (the search space declared under ``sweep:`` in the recipe config,
validated against the composed config) · ``objective`` (one trial = ``pipeline.train`` as an
MLflow child run, pruned on per-epoch validation loss) · ``study`` (storage, resume, worker
processes, ``--register-best``) · ``summary`` (table + importance plot on the parent run).

Optuna is imported only inside these modules, never at ``import opsline``.
"""
