"""OTLP export across processes (SPEC 7): ``[telemetry] otlp_endpoint``.

The daemon runs as ``venom run`` does, plugins in a worker process and the
ledger in its own; every process sends its spans over OTLP/HTTP to a
collector stand-in in this test that decodes the protobuf requests. The
beat's trace is put together again from what the three processes sent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.helpers import make_config
from tests.otlp_sink import OtlpSink
from venom.daemon.config.settings import PluginsConfig, TelemetryConfig
from venom.daemon.service.run import run_daemon

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

PLUGINS = ["optical-plant", "thermal", "regen-core", "balance-core", "ledger"]
BEATS = 40


@pytest.fixture
def collector() -> Iterator[OtlpSink]:
    with OtlpSink() as sink:
        yield sink


async def test_spans_of_every_process_reach_the_collector(
    nats_url: str, tmp_path: Path, collector: OtlpSink
) -> None:
    # Back-to-back: the daemon waits for every plugin before beat 1, and each
    # beat for every reply, so every beat has every span.
    cfg = make_config(
        prefix="otlp",
        period=0.0,
        deadline=0.5,
        plugins=PluginsConfig(run=PLUGINS, processes=1, alone=["ledger"]),
    )
    cfg = msgspec.structs.replace(
        cfg,
        nats=msgspec.structs.replace(cfg.nats, url=nats_url),
        telemetry=TelemetryConfig(otlp_endpoint=collector.url, sample_ratio=1.0),
    )
    arbiter = await run_daemon(cfg, tmp_path, beats=BEATS, live=False)
    assert arbiter is not None
    assert arbiter.beat == BEATS

    # Every process flushed its spans on the way out (providers shut down last).
    spans: list[tuple[str, str, Any]] = []  # (role, span name, span)
    for body in collector.received["/v1/traces"]:
        request = ExportTraceServiceRequest.FromString(body)
        for rs in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            assert attrs["service.name"] == "venom"
            for ss in rs.scope_spans:
                assert ss.scope.name == "venom"
                spans += [(attrs["venom.role"], s.name, s) for s in ss.spans]
    by_name: dict[tuple[str, str], int] = defaultdict(int)
    for role, name, _ in spans:
        by_name[(role, name)] += 1
    assert by_name == {
        ("arbiter", "beat"): BEATS,
        ("arbiter", "send otlp.pulse"): BEATS,
        # Four pulse plugins in the worker, the ledger answering in its own process.
        ("plugin", "process otlp.pulse"): BEATS * len(PLUGINS),
        ("plugin", "ledger append"): BEATS,
    }
    traces: dict[bytes, set[str]] = defaultdict(set)
    for _, name, span in spans:
        traces[span.trace_id].add(name)
    assert len(traces) == BEATS
    assert all(len(names) == 4 for names in traces.values())

    # The arbiter's metrics went out too.
    metrics = [
        m.name
        for body in collector.received["/v1/metrics"]
        for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    ]
    assert {"venom.beat.duration", "venom.decisions", "venom.ledger.size"} <= set(metrics)
