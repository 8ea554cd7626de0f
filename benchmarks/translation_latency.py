"""Serving latency of the translation predictor: one 10-word sentence, greedy decoding.

Measures ``predictor.predict([request])`` (tokenize -> generate -> decode), the work one
``POST /predict`` does besides HTTP, on the model directory given (an exported model, e.g.
from ``opsline run translation``: ``.opsline/models/...`` or a ``runs:/`` download)::

    python benchmarks/translation_latency.py MODEL_DIR [--repeats 200] [--threads 1]

Target: median <= 50 ms on 2 CPU cores. Results: ``benchmarks/translation_results.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

SENTENCE = "Jeg vil gerne have en kop kaffe og lidt kage."  # 10 words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (the server default, OPSLINE_TRANSLATION_THREADS)",
    )
    parser.add_argument("--beams", type=int, default=1)
    args = parser.parse_args()

    import os

    os.environ["OPSLINE_TRANSLATION_THREADS"] = str(args.threads)  # read by the predictor
    from opsline.recipes.translation.predictor import TranslationPredictor
    from opsline.recipes.translation.schemas import TranslationRequest

    predictor = TranslationPredictor.load(args.model_dir)
    request = TranslationRequest(text=SENTENCE, num_beams=args.beams)
    assert len(SENTENCE.split()) == 10
    for _ in range(10):  # warm-up: first calls allocate and pick kernels
        predictor.predict([request])
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        response = predictor.predict([request])[0]
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(f"model: {args.model_dir} ({predictor.info.get('architecture')})")
    print(f"input: {SENTENCE!r}\noutput: {response.translation!r}")
    import torch

    print(
        f"threads={torch.get_num_threads()} beams={args.beams} repeats={args.repeats}: "
        f"median {statistics.median(times):.1f} ms, p90 {times[int(0.9 * len(times))]:.1f} ms, "
        f"min {times[0]:.1f} ms"
    )


if __name__ == "__main__":
    main()
