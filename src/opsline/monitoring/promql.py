"""PromQL's ``rate()`` and ``histogram_quantile()``, over snapshots of a Prometheus registry.

A snapshot is every sample of ``registry.collect()`` as ``{(name, labels): value}``; two
snapshots give per-interval deltas, from which rates and quantiles follow the way a
Prometheus server would compute them. Only ``collect()`` is needed: this module does not
import ``prometheus_client``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

# A sample key: (sample name, sorted label pairs). A snapshot maps keys to values.
Key = tuple[str, tuple[tuple[str, str], ...]]
Snapshot = dict[Key, float]


def snapshot(registry: Any) -> Snapshot:
    """Every sample of ``registry.collect()`` as ``{(name, labels): value}``.

    ``*_created`` samples (creation timestamps) are dropped: they are not measurements.
    """
    values: Snapshot = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            values[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return values


def counter_delta(now: Snapshot, before: Snapshot) -> Snapshot:
    """``now - before`` per sample; a value that went down is a reset, so it counts from 0.

    Keys only in ``now`` (a label seen for the first time) count from 0 as well.
    """
    out: Snapshot = {}
    for key, value in now.items():
        previous = before.get(key, 0.0)
        out[key] = value if value < previous else value - previous
    return out


def select(
    values: Snapshot,
    name: str,
    keep: Callable[[dict[str, str]], bool] | None = None,
) -> list[tuple[dict[str, str], float]]:
    """The ``(labels, value)`` pairs of sample ``name`` whose labels pass ``keep``."""
    found = []
    for (sample, labels), value in values.items():
        if sample == name:
            as_dict = dict(labels)
            if keep is None or keep(as_dict):
                found.append((as_dict, value))
    return found


def total(
    values: Snapshot, name: str, keep: Callable[[dict[str, str]], bool] | None = None
) -> float | None:
    """Sum of the matching samples; ``None`` if the metric is absent."""
    found = select(values, name, keep)
    return sum(v for _, v in found) if found else None


def buckets_by(
    values: Snapshot,
    histogram: str,
    by: str | None = None,
    keep: Callable[[dict[str, str]], bool] | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """Cumulative ``(le, count)`` buckets of ``histogram``, summed per value of label ``by``.

    Summing buckets across other labels (e.g. methods of one route) is valid because every
    child of one histogram shares the same bucket bounds. ``by=None`` sums everything
    under the key ``""``.
    """
    grouped: dict[str, dict[float, float]] = {}
    for labels, value in select(values, f"{histogram}_bucket", keep):
        group = grouped.setdefault(labels.get(by, "") if by else "", {})
        le = float(labels["le"])  # "+Inf" parses to inf
        group[le] = group.get(le, 0.0) + value
    return {name: sorted(group.items()) for name, group in grouped.items()}


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q``-quantile of a histogram from its cumulative buckets, as PromQL estimates it.

    Args:
        q: the quantile, in [0, 1].
        buckets: ``(upper bound, cumulative count)`` pairs sorted by bound, the last being
            ``+Inf`` (the total count).

    Returns:
        ``None`` when the histogram holds no observations. Otherwise the value below which a
        fraction ``q`` of the observations lie, assuming observations are spread uniformly
        inside the bucket the rank falls into (linear interpolation between its lower and
        upper bound; the first bucket's lower bound is 0). If the rank falls in the ``+Inf``
        bucket, the largest finite bound is returned: nothing better is known about it.
    """
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    # Counts of delta buckets may be slightly non-monotonic if a reset hit some children
    # and not others; enforce monotonicity as Prometheus does rather than interpolate garbage.
    bounds, counts = [], []
    running = 0.0
    for bound, count in buckets:
        running = max(running, count)
        bounds.append(bound)
        counts.append(running)
    observations = counts[-1]
    if observations <= 0:
        return None
    rank = min(max(q, 0.0), 1.0) * observations
    for i, (bound, count) in enumerate(zip(bounds, counts, strict=True)):
        if count >= rank:
            if math.isinf(bound):
                return bounds[i - 1] if i > 0 else None
            lower = bounds[i - 1] if i > 0 else 0.0
            below = counts[i - 1] if i > 0 else 0.0
            if i == 0 and bound <= 0:
                return bound
            in_bucket = count - below
            if in_bucket <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / in_bucket
    return bounds[-2] if len(bounds) > 1 else None  # unreachable: rank <= observations
