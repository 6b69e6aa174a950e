"""One trace per beat, across the bus (issue 5, point 1; SPEC 7).

``run_daemon`` as ``venom run`` runs it, against a real nats-server, with
the plugins and the ledger in the daemon's process (``processes = 0``) so
that one in-memory span exporter sees every span; the ledger is read back
from its files.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import msgspec
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from tests.helpers import make_config
from venom.daemon.config.settings import PluginsConfig, VenomConfig
from venom.daemon.observe.providers import TelemetryProviders
from venom.daemon.service.run import run_daemon
from venom.plugins.ledger.entry import parse_entry
from venom.plugins.ledger.store import LedgerStore
from venom.schemas import host_set

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PLUGINS = ["optical-plant", "kalman", "thermal", "gate", "regen-core", "balance-core", "ledger"]
BEATS = 30


def _config(nats_url: str, prefix: str) -> VenomConfig:
    cfg = make_config(
        prefix=prefix,
        period=0.01,
        deadline=0.5,
        plugins=PluginsConfig(run=PLUGINS, processes=0),
    )
    return msgspec.structs.replace(cfg, nats=msgspec.structs.replace(cfg.nats, url=nats_url))


def _ledger_traces(state: Path) -> dict[int, str]:
    store = LedgerStore(state / "plugins" / "ledger")
    try:
        entries = [parse_entry(store.read(i), i) for i in range(store.size)]
    finally:
        store.close()
    return {e.record.beat: e.record.trace_id for e in entries}


async def _run(nats_url: str, prefix: str, state: Path, provider: TracerProvider) -> None:
    telemetry = TelemetryProviders(tracer_provider=provider)
    try:
        arbiter = await run_daemon(
            _config(nats_url, prefix), state, beats=BEATS, live=False, telemetry=telemetry
        )
    finally:
        provider.force_flush()
    assert arbiter is not None
    assert arbiter.beat == BEATS


async def test_one_trace_per_beat_through_plugins_and_ledger(nats_url: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await _run(nats_url, "traced", tmp_path, provider)

    spans = exporter.get_finished_spans()
    by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        assert span.context is not None
        by_trace[span.context.trace_id].append(span)
    # Low-cardinality names only: no beat number, no inbox.
    assert {s.name for s in spans} == {
        "beat",
        "send traced.pulse",
        "process traced.pulse",
        "ledger append",
    }

    ledger = _ledger_traces(tmp_path)
    assert sorted(ledger) == list(range(1, BEATS + 1))
    roots = {s.attributes["venom.beat"]: s for s in spans if s.name == "beat"}  # type: ignore[index]
    assert sorted(roots) == list(range(1, BEATS + 1))
    assert len(by_trace) == BEATS  # one trace per beat, nothing outside them

    for beat, root in roots.items():
        assert root.parent is None
        assert root.context is not None
        trace = by_trace[root.context.trace_id]
        # The ledger entry carries the beat's trace id.
        assert ledger[beat] == f"{root.context.trace_id:032x}"
        assert root.attributes is not None
        assert root.attributes["venom.decision"] in (
            "QUARANTINE",
            "ALERT",
            "BALANCE",
            "REPAIR",
            "OPTIMIZE",
            "STEADY",
        )
        sends = [s for s in trace if s.name == "send traced.pulse"]
        assert len(sends) == 1
        send = sends[0]
        assert send.kind == SpanKind.PRODUCER
        assert send.parent is not None
        assert send.parent.span_id == root.context.span_id
        assert send.attributes is not None
        assert send.attributes["messaging.system"] == "nats"
        assert send.attributes["messaging.destination.name"] == "traced.pulse"
        assert send.attributes["messaging.operation.name"] == "send"
        assert send.context is not None

        # One process span per plugin, parented through the pulse's traceparent.
        processes = [s for s in trace if s.name == "process traced.pulse"]
        plugins = sorted(str(s.attributes["venom.plugin"]) for s in processes)  # type: ignore[index]
        assert plugins == sorted(PLUGINS)
        for span in processes:
            assert span.kind == SpanKind.CONSUMER
            assert span.parent is not None
            assert span.parent.is_remote
            assert span.parent.span_id == send.context.span_id
            assert span.attributes is not None
            assert span.attributes["venom.beat"] == beat
            assert span.attributes["messaging.operation.name"] == "process"
            # Hosted together in the daemon: one queue group, one ReplyBatch a beat.
            assert span.attributes["messaging.consumer.group.name"] == (
                f"traced.host.{host_set(PLUGINS)}"
            )

        appends = [s for s in trace if s.name == "ledger append"]
        assert len(appends) == 1
        append = appends[0]
        assert append.parent is not None
        assert append.parent.span_id == root.context.span_id
        assert append.attributes is not None
        assert append.attributes["venom.beat"] == beat
        assert append.attributes["venom.ledger.index"] == beat - 1


async def test_unsampled_beats_make_no_spans_but_keep_ids(nats_url: str, tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    await _run(nats_url, "untraced", tmp_path, provider)
    # The root sampler said no: plugins and the ledger follow the header's flag.
    assert exporter.get_finished_spans() == ()
    ids = _ledger_traces(tmp_path)
    assert sorted(ids) == list(range(1, BEATS + 1))
    assert len(set(ids.values())) == BEATS
    assert all(len(t) == 32 and int(t, 16) for t in ids.values())
