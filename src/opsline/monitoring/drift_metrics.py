"""Prometheus series of the server's latest drift check (``opsline.serving.drift_monitor``).

* ``opsline_drift_share`` — share of monitored features that drifted (0-1);
* ``opsline_drift_detected`` — 1 when the check found data drift, else 0;
* ``opsline_feature_drift_score{feature}`` — each feature's score: a p-value for K-S /
  chi-square / Z tests (drift below the threshold), a distance for Wasserstein /
  Jensen-Shannon (drift at or above it); ``GET /drift`` names each feature's method;
* ``opsline_feature_drift_threshold{feature}`` and ``opsline_feature_drifted{feature}`` (1/0);
* ``opsline_drift_window_rows`` — logged requests in the last check's window;
* ``opsline_drift_last_check_timestamp_seconds`` — when that check ran.

A check without a verdict (not enough data, no reference, no model) exports only the last
two: the verdict series are *absent* rather than 0, so ``OpslineDataDrift`` neither fires
nor resolves on data that does not exist, and a stale verdict is never shown as current.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:  # pragma: no cover
    from opsline.monitoring.drift import DriftResult


class DriftCollector(Collector):
    """Reads ``latest()`` at every scrape (nothing to keep in sync)."""

    def __init__(self, latest: Callable[[], DriftResult | None]):
        self._latest = latest

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names reserved in the registry even before the first check.
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        result = self._latest()
        if result is None:
            return
        share, detected, score, threshold, drifted, rows, checked = self._families()
        rows.add_metric([], float(result.rows))
        checked.add_metric([], float(result.checked_at))
        yield rows
        yield checked
        if not result.verdict:
            return
        share.add_metric([], float(result.share or 0.0))
        detected.add_metric([], 1.0 if result.detected else 0.0)
        for feature in result.features:
            score.add_metric([feature.name], feature.score)
            threshold.add_metric([feature.name], feature.threshold)
            drifted.add_metric([feature.name], 1.0 if feature.drifted else 0.0)
        yield from (share, detected, score, threshold, drifted)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "opsline_drift_share", "Share of monitored features that drifted in the last check."
            ),
            GaugeMetricFamily(
                "opsline_drift_detected", "1 when the last drift check found data drift, else 0."
            ),
            GaugeMetricFamily(
                "opsline_feature_drift_score",
                "Drift score of each monitored feature (p-value or distance, "
                "see GET /drift for each method).",
                labels=["feature"],
            ),
            GaugeMetricFamily(
                "opsline_feature_drift_threshold",
                "Drift threshold of each monitored feature's test.",
                labels=["feature"],
            ),
            GaugeMetricFamily(
                "opsline_feature_drifted",
                "1 when the feature drifted in the last check, else 0.",
                labels=["feature"],
            ),
            GaugeMetricFamily(
                "opsline_drift_window_rows", "Logged requests in the last drift check's window."
            ),
            GaugeMetricFamily(
                "opsline_drift_last_check_timestamp_seconds", "Unix time of the last drift check."
            ),
        )


def register_drift_metrics(
    registry: CollectorRegistry, latest: Callable[[], DriftResult | None]
) -> DriftCollector:
    """Add the drift series to an app's registry (``ServingMetrics.registry``)."""
    collector = DriftCollector(latest)
    registry.register(collector)
    return collector
