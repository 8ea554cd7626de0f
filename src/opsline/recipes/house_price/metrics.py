"""Valuation metrics and diagnostic plots.

The headline an appraiser reads is the share of estimates within ±5 / 10 / 20 % of the
sale price; RMSLE (the error of log price) is the gate's metric because it treats a $20k
miss on a $100k house as worse than on a $500k one, as buyers do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

WITHIN = (5, 10, 20)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE (USD), RMSLE, MAPE (fraction) and within_{5,10,20}pct (fractions 0-1)."""
    import numpy as np

    y = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if y.shape != p.shape or y.size == 0:
        raise ValueError(f"need equally long, non-empty arrays, got {y.shape} and {p.shape}")
    if (y <= 0).any() or (p <= 0).any() or not np.isfinite(p).all():
        raise ValueError("prices must be positive and finite to compute log-error metrics")
    relative = np.abs(p - y) / y
    metrics = {
        "rmse": float(np.sqrt(np.mean((p - y) ** 2))),
        "mae": float(np.mean(np.abs(p - y))),
        "rmsle": float(np.sqrt(np.mean((np.log1p(p) - np.log1p(y)) ** 2))),
        "mape": float(np.mean(relative)),
    }
    for pct in WITHIN:
        metrics[f"within_{pct}pct"] = float(np.mean(relative <= pct / 100))
    return metrics


def figures(actual: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """``predicted_vs_actual.png`` and ``residuals.png`` (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import numpy as np
    from matplotlib.figure import Figure

    y = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    scatter = Figure(figsize=(5.5, 5))
    ax = scatter.subplots()
    ax.scatter(y / 1000, p / 1000, s=8, alpha=0.5)
    lo, hi = float(min(y.min(), p.min())) / 1000, float(max(y.max(), p.max())) / 1000
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, label="perfect")
    ax.fill_between(
        [lo, hi],
        [lo * 0.9, hi * 0.9],
        [lo * 1.1, hi * 1.1],
        color="green",
        alpha=0.12,
        label="±10 %",
    )
    ax.set(
        xlabel="actual price (k$)",
        ylabel="predicted price (k$)",
        title="Predicted vs actual sale price",
    )
    ax.legend(loc="upper left")
    scatter.tight_layout()

    resid = Figure(figsize=(9, 4))
    left, right = resid.subplots(1, 2)
    log_error = np.log(p) - np.log(y)
    left.scatter(p / 1000, 100 * (p - y) / y, s=8, alpha=0.5)
    left.axhline(0, color="black", lw=1)
    left.set(
        xlabel="predicted price (k$)",
        ylabel="error (% of actual)",
        title="Relative error vs prediction",
    )
    right.hist(log_error, bins=40)
    right.set(xlabel="log(predicted) - log(actual)", ylabel="sales", title="Log-error histogram")
    resid.tight_layout()
    return {"predicted_vs_actual.png": scatter, "residuals.png": resid}
