"""BeatMetrics: the per-beat counters read as monotonic cumulative sums, by attribute."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

from venom.daemon.observe.metrics import BeatMetrics, Gauges
from venom.schemas import Decision, GatherReport


def _sums(reader: InMemoryMetricReader) -> dict[str, dict[str, Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    out: dict[str, dict[str, Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "venom.beat.duration":
                    out[metric.name] = {"count": metric.data.data_points[0].count}  # type: ignore[union-attr]
                    continue
                points = metric.data.data_points
                if not hasattr(metric.data, "is_monotonic") or metric.name == "venom.missed_ticks":
                    continue
                assert metric.data.is_monotonic
                assert (
                    metric.data.aggregation_temporality  # type: ignore[union-attr]
                    == AggregationTemporality.CUMULATIVE
                )
                out[metric.name] = {
                    str(next(iter((p.attributes or {}).values()))): p.value  # type: ignore[union-attr]
                    for p in points
                }
    return out


def test_counters_add_up_over_beats_by_action_guard_and_plugin() -> None:
    reader = InMemoryMetricReader()
    metrics = BeatMetrics(MeterProvider(metric_readers=[reader]), Gauges())
    metrics.beat(
        GatherReport(beat=1, missing=["kalman"], late={"flow": 2}),
        Decision(beat=1, action="ALERT", vetoes=["gate"]),
        0.002,
    )
    metrics.beat(GatherReport(beat=2, missing=["kalman"]), Decision(beat=2, action="STEADY"), 0.001)
    first = _sums(reader)
    assert first["venom.decisions"] == {"ALERT": 1, "STEADY": 1}
    assert first["venom.vetoes"] == {"gate": 1}
    assert first["venom.replies.missing"] == {"kalman": 2}
    assert first["venom.replies.late"] == {"flow": 2}
    assert first["venom.beat.duration"] == {"count": 2}
    metrics.beat(GatherReport(beat=3), Decision(beat=3, action="STEADY"), 0.001)
    assert _sums(reader)["venom.decisions"] == {"ALERT": 1, "STEADY": 2}
