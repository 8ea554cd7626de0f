"""Classification metrics, the per-class report and diagnostic figures.

Multi-class: ``accuracy``, ``macro_f1``, ``top3_accuracy`` and per class ``f1/<class>``
(precision, recall and support are in the per-class report); a confusion-matrix plot and a
grid of misclassified images
(with true and predicted class) as artifacts. Multi-label: ``accuracy`` (mean per-attribute
accuracy — the promotion metric for both tasks), ``macro_f1``, ``map`` (mean average
precision over attributes), ``exact_match``, and per attribute ``f1/<attr>`` and
``ap/<attr>`` (accuracy and positives in the report).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MAX_EXAMPLES = 16


def _key(name: str) -> str:
    """A metric-name-safe class name (MLflow allows ``[\\w./ -]``)."""
    return re.sub(r"[^\w.\- ]", "_", name)


def multiclass(y: np.ndarray, probs: np.ndarray, classes: list[str]) -> tuple[dict, dict]:
    """``(metrics, report)``: flat metrics for MLflow and a per-class report for JSON."""
    import numpy as np
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    pred = probs.argmax(1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0
    )
    metrics = {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
    }
    if len(classes) > 3:
        top3 = np.argsort(-probs, axis=1)[:, :3]
        metrics["top3_accuracy"] = float((top3 == y[:, None]).any(1).mean())
    report = {}
    for i, name in enumerate(classes):
        metrics[f"f1/{_key(name)}"] = float(f1[i])
        report[name] = {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
    report["confusion_matrix"] = confusion_matrix(y, pred, labels=labels).tolist()
    return metrics, report


def multilabel(
    y: np.ndarray, probs: np.ndarray, names: list[str], threshold: float
) -> tuple[dict, dict]:
    import numpy as np
    from sklearn.metrics import average_precision_score, f1_score

    pred = (probs >= threshold).astype(int)
    metrics: dict[str, float] = {}
    report: dict[str, Any] = {}
    accs, f1s, aps = [], [], []
    for j, name in enumerate(names):
        acc = float((pred[:, j] == y[:, j]).mean())
        f1 = float(f1_score(y[:, j], pred[:, j], zero_division=0))
        # AP is undefined without a positive example; leave it out of the mean then.
        ap = float(average_precision_score(y[:, j], probs[:, j])) if y[:, j].any() else None
        accs.append(acc)
        f1s.append(f1)
        metrics[f"f1/{_key(name)}"] = f1
        if ap is not None:
            aps.append(ap)
            metrics[f"ap/{_key(name)}"] = ap
        report[name] = {"accuracy": acc, "f1": f1, "ap": ap, "positives": int(y[:, j].sum())}
    metrics.update(
        {
            "accuracy": float(np.mean(accs)),
            "macro_f1": float(np.mean(f1s)),
            "map": float(np.mean(aps)) if aps else float("nan"),
            "exact_match": float((pred == y).all(1).mean()),
        }
    )
    return metrics, report


def confusion_figure(matrix: list[list[int]], classes: list[str]) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import numpy as np
    from matplotlib.figure import Figure

    m = np.asarray(matrix)
    size = max(4.5, 0.6 * len(classes) + 2)
    figure = Figure(figsize=(size, size))
    ax = figure.subplots()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(
                j,
                i,
                str(m[i, j]),
                ha="center",
                va="center",
                color="white" if m[i, j] > m.max() / 2 else "black",
                fontsize=8,
            )
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix")
    figure.tight_layout()
    return figure


def misclassified_figure(examples: list[tuple[Any, str, str, float]]) -> Any:
    """A grid of (image, true, predicted, probability) for up to 16 errors."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    shown = examples[:MAX_EXAMPLES]
    cols = 4
    rows = max(1, (len(shown) + cols - 1) // cols)
    figure = Figure(figsize=(cols * 2.4, rows * 2.6))
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, true, predicted, prob) in zip(axes.flat, shown, strict=False):
        ax.imshow(image, cmap="gray" if getattr(image, "mode", "") == "L" else None)
        ax.set_title(f"true {true}\npred {predicted} ({prob:.0%})", fontsize=8)
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    figure.suptitle("Misclassified examples")
    figure.tight_layout()
    return figure
