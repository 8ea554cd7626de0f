"""The Locust user behind ``opsline loadtest`` (run by the ``locust`` subprocess only).

Never import this module in the opsline process: importing locust monkey-patches sockets,
threads and ssl with gevent for the whole interpreter. The runner passes the recipe through
environment variables, and the tasks are built from ``recipe.sample_requests()``:

=========  ======  ===================================================================
task       weight  request
=========  ======  ===================================================================
typical    10      ``POST /predict`` with one sample request (picked at random)
large      2       ``POST /predict/batch`` with ``OPSLINE_LOADTEST_BATCH`` items (32)
health     1       ``GET /health`` (what a load balancer probes)
metrics    1       ``GET /metrics`` (what Prometheus scrapes)
=========  ======  ===================================================================

Each simulated user waits ``OPSLINE_LOADTEST_WAIT`` seconds ("min,max", default 0.1,0.5)
between requests, like a client that does something with each answer.
"""

import os
import random

from locust import FastHttpUser, between, task

RECIPE_ENV = "OPSLINE_LOADTEST_RECIPE"
BATCH_ENV = "OPSLINE_LOADTEST_BATCH"
WAIT_ENV = "OPSLINE_LOADTEST_WAIT"


def _samples() -> list:
    from opsline.recipes.registry import get_recipe

    recipe = get_recipe(os.environ[RECIPE_ENV])
    samples = [r.model_dump(mode="json") for r in recipe.sample_requests()]
    if not samples:
        raise RuntimeError(f"recipe {recipe.name!r} has no sample_requests() to load-test with")
    return samples


def _wait() -> tuple:
    low, _, high = os.environ.get(WAIT_ENV, "0.1,0.5").partition(",")
    return float(low), float(high or low)


SAMPLES = _samples()
LARGE_BATCH = {
    "items": [SAMPLES[i % len(SAMPLES)] for i in range(int(os.environ.get(BATCH_ENV, "32")))]
}


class RecipeUser(FastHttpUser):
    """One client of the model server; request names are the paths, for per-task stats."""

    wait_time = between(*_wait())

    @task(10)
    def typical(self) -> None:
        self.client.post("/predict", json=random.choice(SAMPLES), name="/predict")

    @task(2)
    def large(self) -> None:
        self.client.post("/predict/batch", json=LARGE_BATCH, name="/predict/batch")

    @task(1)
    def health(self) -> None:
        self.client.get("/health", name="/health")

    @task(1)
    def metrics(self) -> None:
        self.client.get("/metrics", name="/metrics")
