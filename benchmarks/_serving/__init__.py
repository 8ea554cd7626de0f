"""Helpers of ``benchmarks/serving_tabular.py``: wrk runs, server processes, the anchor app
and the MLflow comparison model."""
