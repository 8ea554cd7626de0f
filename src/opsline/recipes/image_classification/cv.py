"""k-fold cross-validation of an image-classification config (the small-data quality claim).

With 50 images a single 10-image test split says little (one image = 10 points), so the
grapevine quality number is the mean over stratified k folds: each fold trains on the other
k-1 folds with the same config and scores the held-out fold. Nothing is registered.

Model selection must not see the held-out fold, so every fold trains for the configured
number of epochs and keeps the *last* weights (``model.checkpoint=last``, no early
stopping); the held-out fold is only scored.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class _NullRun:
    """A run handle that records metrics in memory (CV folds are not tracked runs)."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int | None, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_dict(self, data: dict, artifact_file: str) -> None:
        pass


@dataclass
class CVResult:
    accuracies: list[float]
    macro_f1: list[float]
    seconds: list[float]
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def mean_accuracy(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    def table(self) -> str:
        lines = ["fold  accuracy  macro_f1  seconds"]
        for i, (acc, f1, sec) in enumerate(
            zip(self.accuracies, self.macro_f1, self.seconds, strict=True)
        ):
            lines.append(f"{i + 1:>4}  {acc:8.3f}  {f1:8.3f}  {sec:7.0f}")
        lines.append(
            f"mean  {self.mean_accuracy:8.3f}  "
            f"{sum(self.macro_f1) / len(self.macro_f1):8.3f}  {sum(self.seconds):7.0f}"
        )
        return "\n".join(lines)


def cross_validate(
    overrides: Sequence[str] = (),
    folds: int = 5,
    seed: int = 42,
    only: Sequence[int] | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> CVResult:
    """Stratified ``folds``-fold CV of ``image_classification`` with ``overrides``.

    ``only`` runs a subset of the folds (0-based), e.g. ``[0]`` for a quick check.
    """
    import numpy as np
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold

    from opsline.config import load_config
    from opsline.recipes.image_classification.data import prepare
    from opsline.recipes.image_classification.evaluation import evaluate
    from opsline.recipes.image_classification.predictor import load_predictor
    from opsline.recipes.image_classification.train import train_classifier

    cfg = load_config(
        "image_classification", [*overrides, "model.checkpoint=last", "model.patience=null"]
    )
    if str(cfg.data.get("task", "multiclass")) != "multiclass":
        raise ValueError("cross_validate supports multi-class data sources")
    frame = pd.concat(list(prepare(cfg).values()), ignore_index=True)
    frame = frame.sort_values("item", kind="mergesort").reset_index(drop=True)
    bad = frame[frame["error"].notna()]
    if len(bad):
        raise ValueError(f"{len(bad)} image(s) do not decode, e.g. {bad['error'].iloc[0]}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    result = CVResult([], [], [])
    for k, (train_idx, test_idx) in enumerate(splitter.split(frame, frame["label"])):
        if only is not None and k not in only:
            continue
        started = time.perf_counter()
        parts = {
            "train": frame.iloc[train_idx].reset_index(drop=True),
            "val": frame.iloc[test_idx].reset_index(drop=True),
        }
        with tempfile.TemporaryDirectory(prefix="opsline-cv-") as out:
            train_classifier(cfg, parts, _NullRun(), Path(out))
            predictor = load_predictor(Path(out))
            evaluation = evaluate(cfg, predictor, parts["val"])
        for figure in evaluation.figures.values():
            import matplotlib.pyplot as plt

            plt.close(figure)
        seconds = time.perf_counter() - started
        result.accuracies.append(float(evaluation.metrics["accuracy"]))
        result.macro_f1.append(float(evaluation.metrics["macro_f1"]))
        result.seconds.append(seconds)
        say(
            f"fold {k + 1}/{folds}: accuracy {result.accuracies[-1]:.3f} "
            f"macro-F1 {result.macro_f1[-1]:.3f} ({seconds:.0f} s)"
        )
    if not result.accuracies:
        raise ValueError(f"no folds run (only={only}, folds={folds})")
    say(f"mean accuracy {float(np.mean(result.accuracies)):.3f}")
    return result
