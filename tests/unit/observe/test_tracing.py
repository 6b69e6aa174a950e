"""W3C traceparent handling and the beat's spans (SPEC 7), without a server."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from venom.daemon.config.load import load_config
from venom.daemon.observe.tracing import (
    BeatTrace,
    ConsumerTrace,
    format_traceparent,
    parse_traceparent,
)
from venom.schemas import ConfigError

W3C_EXAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _provider(sampler: object = ALWAYS_ON) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(sampler))  # type: ignore[arg-type]
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_traceparent_round_trip_and_the_w3c_example() -> None:
    ctx = parse_traceparent(W3C_EXAMPLE)
    assert ctx is not None
    assert ctx.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert ctx.span_id == 0x00F067AA0BA902B7
    assert ctx.trace_flags.sampled
    assert ctx.is_remote
    assert format_traceparent(ctx.trace_id, ctx.span_id, True) == W3C_EXAMPLE
    assert format_traceparent(1, 2, False) == f"00-{1:032x}-{2:016x}-00"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        W3C_EXAMPLE.replace("-01", "-0g"),
        W3C_EXAMPLE.upper(),  # hex must be lower case
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        W3C_EXAMPLE + "-extra",  # version 00 has exactly four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
    ],
)
def test_invalid_traceparents_are_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_later_version_with_more_fields_is_read() -> None:
    ctx = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
    assert ctx is not None
    assert ctx.span_id == 0x00F067AA0BA902B7


def test_without_a_provider_ids_are_made_and_marked_unsampled() -> None:
    trace = BeatTrace(None, "venom.pulse")
    trace.begin(1)
    first = (trace.trace_id, trace.span_id)
    assert len(trace.trace_id) == 32
    assert len(trace.span_id) == 16
    assert trace.traceparent == trace.root_traceparent == f"00-{first[0]}-{first[1]}-00"
    trace.sent()
    trace.end("STEADY", 3, 0)
    trace.begin(2)
    assert trace.trace_id != first[0]


def test_sampled_beat_has_root_and_producer_span() -> None:
    provider, exporter = _provider()
    trace = BeatTrace(provider, "lab.pulse")
    trace.begin(7)
    sent_parent = parse_traceparent(trace.traceparent)
    root_parent = parse_traceparent(trace.root_traceparent)
    trace.sent()
    trace.end("ALERT", 5, 1)
    send, root = exporter.get_finished_spans()
    assert root.name == "beat"
    assert root.parent is None
    assert root.attributes == {
        "venom.beat": 7,
        "venom.decision": "ALERT",
        "venom.replies": 5,
        "venom.missing": 1,
    }
    assert send.name == "send lab.pulse"
    assert send.kind == SpanKind.PRODUCER
    assert send.parent is not None
    assert root.context is not None
    assert send.context is not None
    assert send.parent.span_id == root.context.span_id
    # The pulse carries the send span; the record carries the root.
    assert sent_parent is not None
    assert sent_parent.span_id == send.context.span_id
    assert root_parent is not None
    assert root_parent.span_id == root.context.span_id
    assert trace.trace_id == f"{root.context.trace_id:032x}"


def test_a_failed_publish_marks_the_send_span() -> None:
    provider, exporter = _provider()
    trace = BeatTrace(provider, "venom.pulse")
    trace.begin(1)
    trace.sent("no connection")
    trace.end("STEADY", 0, 4)
    send = exporter.get_finished_spans()[0]
    assert send.status.status_code == StatusCode.ERROR
    assert send.status.description == "no connection"


def test_unsampled_root_makes_no_spans_and_consumers_follow() -> None:
    provider, exporter = _provider(ALWAYS_OFF)
    trace = BeatTrace(provider, "venom.pulse")
    trace.begin(1)
    assert trace.traceparent.endswith("-00")
    consumer = ConsumerTrace.messaging(provider, "venom.pulse")
    assert consumer.start({"traceparent": trace.traceparent}, 1) is None
    trace.sent()
    trace.end("STEADY", 0, 0)
    assert exporter.get_finished_spans() == ()


def test_consumer_span_parent_comes_from_the_header() -> None:
    provider, exporter = _provider()
    consumer = ConsumerTrace.messaging(provider, "venom.pulse", extra={"venom.plugin": "kalman"})
    assert consumer.start(None, 1) is None
    assert consumer.start({"traceparent": "bogus"}, 1) is None
    span = consumer.start({"traceparent": W3C_EXAMPLE}, 3)
    assert span is not None
    span.end()
    (done,) = exporter.get_finished_spans()
    assert done.name == "process venom.pulse"
    assert done.kind == SpanKind.CONSUMER
    assert done.parent is not None
    assert done.parent.span_id == 0x00F067AA0BA902B7
    assert done.context is not None
    assert done.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert done.attributes is not None
    assert done.attributes["venom.plugin"] == "kalman"
    assert done.attributes["messaging.system"] == "nats"
    assert done.attributes["venom.beat"] == 3
    # Tracing off in this process: nothing, whatever the header says.
    off = ConsumerTrace.messaging(None, "venom.pulse")
    assert off.start({"traceparent": W3C_EXAMPLE}, 1) is None


def test_telemetry_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"telemetry\.otlp_endpoint"):
        load_config(None, env={"VENOM_TELEMETRY_OTLP_ENDPOINT": "collector:4318"})
    with pytest.raises(ConfigError, match="sample_ratio"):
        load_config(None, env={"VENOM_TELEMETRY_SAMPLE_RATIO": "1.5"})
    cfg = load_config(
        None, env={"VENOM_TELEMETRY_PROMETHEUS": "true", "VENOM_TELEMETRY_PROMETHEUS_PORT": "0"}
    )
    assert cfg.telemetry.prometheus
    assert cfg.telemetry.prometheus_port == 0
