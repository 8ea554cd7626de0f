"""Evaluate a predictor on one split: metrics, per-class report, confusion matrix, errors."""

from __future__ import annotations

import json
from typing import Any

from opsline.recipes.base import Evaluation
from opsline.recipes.image_classification import images, metrics
from opsline.recipes.image_classification.data import decode_limits, image_bytes
from opsline.recipes.image_classification.train import targets


def _misclassified(
    frame: Any, y: Any, probs: Any, classes: list[str], limits: dict
) -> tuple[list, list[dict]]:
    """Images (for the figure) and records (for JSON) of the wrong top-1 predictions."""
    pred = probs.argmax(1)
    wrong = [i for i in range(len(y)) if pred[i] != y[i]]
    # Most confident mistakes first: the most instructive ones.
    wrong.sort(key=lambda i: -float(probs[i, pred[i]]))
    rows = frame.to_dict("records")
    pictures, records = [], []
    for i in wrong:
        record = {
            "item": rows[i]["item"],
            "true": classes[y[i]],
            "predicted": classes[pred[i]],
            "probability": round(float(probs[i, pred[i]]), 4),
        }
        if rows[i].get("path"):
            record["path"] = rows[i]["path"]
        records.append(record)
        if len(pictures) < metrics.MAX_EXAMPLES:
            image = images.decode(image_bytes(rows[i]), **limits).image
            image.thumbnail((160, 160))
            pictures.append((image, record["true"], record["predicted"], record["probability"]))
    return pictures, records


def evaluate(cfg: Any, predictor: Any, frame: Any) -> Evaluation:
    """Task metrics of ``predictor`` on ``frame`` plus figures and JSON reports."""
    import numpy as np

    limits = decode_limits(cfg.data)
    classes = predictor.classes
    probs = predictor.predict_frame(frame, limits)
    y = targets(frame, predictor.task, classes).numpy()
    if predictor.task == "multilabel":
        flat, report = metrics.multilabel(y, probs, classes, predictor.threshold)
        return Evaluation(metrics=flat, texts={"report.json": json.dumps(report, indent=2)})
    flat, report = metrics.multiclass(y, probs, classes)
    pictures, records = _misclassified(frame, np.asarray(y), probs, classes, limits)
    figures = {
        "confusion_matrix.png": metrics.confusion_figure(report["confusion_matrix"], classes),
        "misclassified.png": metrics.misclassified_figure(pictures),
    }
    return Evaluation(
        metrics=flat,
        figures=figures,
        texts={
            "report.json": json.dumps(report, indent=2),
            "misclassified.json": json.dumps(records, indent=2),
        },
    )
