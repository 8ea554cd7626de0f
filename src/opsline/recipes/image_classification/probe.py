"""Linear probe in closed form: logistic regression on frozen, standardised backbone features.

For a few dozen images (grapevine: 40 per CV fold) this beats gradient fine-tuning on a CPU
budget by a wide margin (fold 1: 1.0 vs 0.6-0.7 for 30 epochs of AdamW on the same frozen
features), because the problem is convex and small: L-BFGS finds the L2-regularised optimum
in a second. The views every training image contributes are the augmentation: the 8
rotations/flips for orientation-free data (leaves), else the image and its mirror.

The result is written into the ordinary network — the head is ``BatchNorm1d`` (no affine;
its running mean/var = the feature statistics) followed by ``Linear`` (the regression's
coefficients) — so the exported model, its serving path and its weights format are exactly
those of a Lightning-trained one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from opsline.errors import UsageError
from opsline.recipes.image_classification.backbones import SmallCNN, head_module

EPS = 1e-5  # BatchNorm1d's default eps: standardise exactly as the head will at inference


def features(net: nn.Module, x: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Pooled pre-classifier features of a normalised batch (in chunks, no gradients)."""
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk]
            if isinstance(net, SmallCNN):
                out.append(net.hidden(net.pool(net.features(part))))
            else:
                out.append(net.forward_head(net.forward_features(part), pre_logits=True))
    return torch.cat(out)


def train_views(pre: Any, x: torch.Tensor, orientation_invariant: bool) -> list[torch.Tensor]:
    if orientation_invariant:
        return pre.views_dihedral(x)
    return [x, torch.flip(x, dims=(3,))]


def fit_probe(
    net: nn.Module,
    pre: Any,
    images: torch.Tensor,
    y: torch.Tensor,
    task: str,
    *,
    c: float,
    orientation_invariant: bool,
    max_iter: int = 3000,
) -> dict[str, float]:
    """Fit the head of ``net`` on ``images`` (uint8) / ``y``; returns fit statistics."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    head = head_module(net)
    if not (
        isinstance(head, nn.Sequential)
        and isinstance(head[0], nn.BatchNorm1d)
        and isinstance(head[-1], nn.Linear)
    ):
        raise UsageError("model.fit=probe needs model.head_norm=true (a standardising head).")
    x = pre.normalize(images)
    views = train_views(pre, x, orientation_invariant)
    feats = torch.cat([features(net, v) for v in views]).double()
    targets = y.repeat(len(views), *([1] * (y.dim() - 1))).numpy()
    mean = feats.mean(0)
    var = feats.var(0, unbiased=False)
    z = ((feats - mean) / torch.sqrt(var + EPS)).numpy()
    if task == "multilabel":
        coef, intercept = [], []
        for j in range(targets.shape[1]):
            column = targets[:, j]
            if column.min() == column.max():  # constant attribute: a bias says it all
                coef.append(np.zeros(z.shape[1]))
                intercept.append(12.0 if column[0] == 1 else -12.0)
                continue
            model = LogisticRegression(C=c, max_iter=max_iter).fit(z, column)
            coef.append(model.coef_[0])
            intercept.append(model.intercept_[0])
        weight, bias = np.stack(coef), np.asarray(intercept)
        accuracy = float(((z @ weight.T + bias > 0) == targets).mean())
    else:
        model = LogisticRegression(C=c, max_iter=max_iter).fit(z, targets)
        weight = np.zeros((head[-1].out_features, z.shape[1]))
        bias = np.full(head[-1].out_features, -30.0)  # a class never seen in train
        weight[model.classes_] = (
            model.coef_
            if len(model.classes_) > 2
            else np.stack([-model.coef_[0], model.coef_[0]]) / 2
        )
        bias[model.classes_] = (
            model.intercept_
            if len(model.classes_) > 2
            else np.asarray([-model.intercept_[0], model.intercept_[0]]) / 2
        )
        accuracy = float(model.score(z, targets))
    with torch.no_grad():
        head[0].running_mean.copy_(mean.float())
        head[0].running_var.copy_(var.float())
        head[-1].weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        head[-1].bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    net.eval()
    return {
        "probe_train_accuracy": accuracy,
        "probe_views": float(len(views)),
        "probe_samples": float(len(z)),
    }
