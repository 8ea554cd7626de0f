"""Fashion-MNIST: test accuracy of the small CNN on the official 10,000 test images.

    python benchmarks/image_fashion_mnist.py                     # experiment=fashion_mnist_cnn
    python benchmarks/image_fashion_mnist.py model.max_epochs=8

Full data (55,000 train / 5,000 val carved from the official 60,000; official test split)
from Debian's dataset-fashion-mnist. Prints prepare and training minutes, test accuracy and
macro-F1. Uses a temporary workspace; nothing is left behind.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")


def main(argv: list[str]) -> None:
    from opsline import pipeline

    overrides = ["experiment=fashion_mnist_cnn", "trainer.enable_progress_bar=false", *argv]
    with tempfile.TemporaryDirectory() as home:
        os.environ["OPSLINE_HOME"] = home
        started = time.perf_counter()
        dataset = pipeline.prepare("image_classification", overrides)
        prepared = time.perf_counter()
        assert pipeline.validate("image_classification", overrides).ok
        result = pipeline.train(
            "image_classification", overrides, say=lambda m: print(m, flush=True)
        )
        done = time.perf_counter()
        from opsline.tracking.runs import client

        run = client().get_run(result.run_id)
        train_seconds = run.data.metrics.get("train_seconds", float("nan"))
    rows = {s: dataset.manifest["splits"][s]["rows"] for s in dataset.splits}
    print(f"rows {rows}; duplicates dropped {dataset.manifest['extras']['duplicates_dropped']}")
    print(
        f"prepare {(prepared - started) / 60:.1f} min; training (fit, incl. decoding) "
        f"{train_seconds / 60:.1f} min; train+evaluate+register {(done - prepared) / 60:.1f} min"
    )
    print(
        f"test accuracy {result.metrics['test_accuracy']:.4f}  "
        f"macro-F1 {result.metrics['test_macro_f1']:.4f}  "
        f"val accuracy {result.metrics['val_accuracy']:.4f}"
    )
    print(
        f"overrides: {' '.join(overrides)}; {os.cpu_count()} CPU cores "
        f"(load average at the end {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
