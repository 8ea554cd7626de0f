"""The model server: a FastAPI app built by :func:`opsline.serving.app.create_app`.

Nothing heavy is imported here: ``opsline.serving.settings`` must stay cheap for the CLI.
Import ``create_app`` / ``serve`` from ``opsline.serving.app``.
"""
