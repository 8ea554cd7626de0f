"""The ``opsline`` command line: a thin Typer shell over :mod:`opsline.pipeline`.

One module per command group (``models``: train/evaluate/promote/models, ``serve``: serve/run,
``data``, ``loadtest``, ``sweep``, ``monitor``, ``predictions``, ``stack``, ``dvc``), assembled
in :mod:`opsline.cli.app`.
"""

from opsline.cli.app import app, main

__all__ = ["app", "main"]
