"""Shared Lightning training pieces: the Trainer factory and the run-metrics callback.

Importing this package is cheap; Lightning is only imported when a function is called::

    from opsline.training.trainer import build_trainer
    from opsline.training.callbacks import RunMetricsCallback
"""
