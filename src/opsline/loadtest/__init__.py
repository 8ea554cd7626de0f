"""Load tests with SLO verdicts: ``opsline loadtest RECIPE --host URL ...``.

Module map: ``locustfile`` (the Locust user; only ever imported by the ``locust`` subprocess,
because Locust monkey-patches the process with gevent) · ``runner`` (reachability preflight,
running Locust headless, the verdict) · ``report`` (parsing Locust's CSV, ``summary.json``,
the printed table, attaching the report to the served model version in MLflow).
"""
