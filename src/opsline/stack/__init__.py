"""``opsline stack``: PostgreSQL, an S3 server and an MLflow tracking server on this machine.

One module per concern: ``settings`` (configs/stack.yaml), ``processes`` (start, pid files,
stop by process group), ``postgres``, ``s3`` (SeaweedFS), ``mlflow_server`` and ``manager``
(up / down / status and the environment a user exports).
"""
