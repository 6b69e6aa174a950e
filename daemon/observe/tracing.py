"""One trace per beat, carried across the bus in W3C ``traceparent`` headers (SPEC 7).

The arbiter opens the root span ``beat`` and, inside it, ``send <prefix>.pulse``
(PRODUCER) around the publish; the pulse carries the send span's context in
``traceparent``. Each plugin opens ``process <prefix>.pulse`` (CONSUMER) with
that context as parent, and the ledger opens ``ledger append`` under the
beat's root (the record is published into JetStream with the root's
``traceparent``). Span names never hold a beat number or an inbox; those are
attributes.

The header is written and read here directly, not through the global
propagator: one f-string per beat, one split per message. A beat the sampler
drops still gets ids (they go into the ledger) and a ``traceparent`` whose
flags say "not sampled", so downstream nobody builds spans for it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
)

from venom.daemon.config.version import VERSION
from venom.schemas import HDR_TRACEPARENT

#: Instrumentation scope of every venom span.
SCOPE = "venom"
SCOPE_VERSION = VERSION

SYSTEM = {"messaging.system": "nats"}

_HEX = frozenset("0123456789abcdef")
#: Last hex digit of a flags byte whose "sampled" bit (0x01) is clear.
_UNSAMPLED = frozenset("02468ace")
#: Ids of beats traced without a provider (W3C: random, not secret).
_random = random.Random()


def get_tracer(provider: TracerProvider | None) -> Tracer | None:
    """venom's tracer from ``provider``; None when tracing is off."""
    return provider.get_tracer(SCOPE, SCOPE_VERSION) if provider is not None else None


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    """``00-<32 hex>-<16 hex>-<01|00>``."""
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote span context in a ``traceparent`` value; None if absent or invalid."""
    if not value or len(value) < 55:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, tid, sid, flags = parts[0], parts[1], parts[2], parts[3]
    if version == "00" and len(parts) != 4:
        return None
    if len(tid) != 32 or len(sid) != 16 or len(flags) != 2:
        return None
    if not (_HEX.issuperset(tid) and _HEX.issuperset(sid) and _HEX.issuperset(flags)):
        return None
    trace_id, span_id = int(tid, 16), int(sid, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags, 16)))


def remote_parent(headers: Mapping[str, str] | None) -> Context | None:
    """A context whose current span is the *sampled* remote parent in ``headers``.

    None when there is no valid ``traceparent`` or its beat was not sampled:
    then no span is made at all (the cheap path for most beats).
    """
    if not headers:
        return None
    value = headers.get(HDR_TRACEPARENT)
    # Most beats are not sampled: the flags (always at 53:55) say so before any parsing.
    if not value or value[54:55] in _UNSAMPLED:
        return None
    parent = parse_traceparent(value)
    if parent is None or not parent.trace_flags.sampled:
        return None
    return trace.set_span_in_context(NonRecordingSpan(parent))


class BeatTrace:
    """The arbiter's spans of the beat in progress (one beat at a time)."""

    __slots__ = (
        "_pulse_attrs",
        "_pulse_name",
        "_root",
        "_send",
        "_tracer",
        "root_traceparent",
        "span_id",
        "trace_id",
        "traceparent",
    )

    def __init__(self, provider: TracerProvider | None, pulse_subject: str) -> None:
        self._tracer = get_tracer(provider)
        self._pulse_name = f"send {pulse_subject}"
        self._pulse_attrs = {
            **SYSTEM,
            "messaging.destination.name": pulse_subject,
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
        }
        self._root: Span | None = None
        self._send: Span | None = None
        #: Hex ids of the beat's root span (stored in the BeatRecord and the ledger).
        self.trace_id = ""
        self.span_id = ""
        #: The header value the pulse carries (the send span's context).
        self.traceparent = ""
        #: The root span's context: what the beat record travels with to the ledger.
        self.root_traceparent = ""

    def begin(self, beat: int) -> None:
        """Open the beat's root span (or just make ids when tracing is off)."""
        tracer = self._tracer
        if tracer is None:
            self._set_ids(_random.getrandbits(128), _random.getrandbits(64))
            return
        root = self._root = tracer.start_span("beat", attributes={"venom.beat": beat})
        ctx = root.get_span_context()
        if not root.is_recording():
            self._set_ids(ctx.trace_id, ctx.span_id)
            return
        send = self._send = tracer.start_span(
            self._pulse_name,
            context=trace.set_span_in_context(root),
            kind=SpanKind.PRODUCER,
            attributes={**self._pulse_attrs, "venom.beat": beat},
        )
        self._set_ids(ctx.trace_id, ctx.span_id, send_span_id=send.get_span_context().span_id)

    def _set_ids(self, trace_id: int, span_id: int, *, send_span_id: int = 0) -> None:
        """The beat's ids; sampled exactly when there is a send span (the pulse carries it)."""
        self.trace_id = f"{trace_id:032x}"
        self.span_id = f"{span_id:016x}"
        sampled = bool(send_span_id)
        self.root_traceparent = format_traceparent(trace_id, span_id, sampled)
        self.traceparent = (
            format_traceparent(trace_id, send_span_id, True) if sampled else self.root_traceparent
        )

    def sent(self, error: str = "") -> None:
        """The pulse is published (or failed with ``error``): end the send span."""
        send, self._send = self._send, None
        if send is not None:
            if error:
                send.set_status(Status(StatusCode.ERROR, error))
            send.end()

    def end(self, action: str, replies: int, missing: int) -> None:
        """Close the root span with the beat's outcome."""
        root, self._root = self._root, None
        if root is not None and root.is_recording():
            root.set_attributes(
                {"venom.decision": action, "venom.replies": replies, "venom.missing": missing}
            )
        if root is not None:
            root.end()


class ConsumerTrace:
    """Spans of one consumer of traced messages: a plugin's ``process <prefix>.pulse``,
    the ledger's ``ledger append``."""

    __slots__ = ("_attrs", "_kind", "_name", "_tracer")

    def __init__(
        self,
        provider: TracerProvider | None,
        name: str,
        attributes: Mapping[str, str | int],
        *,
        kind: SpanKind = SpanKind.CONSUMER,
    ) -> None:
        self._tracer = get_tracer(provider)
        self._name = name
        self._kind = kind
        self._attrs = dict(attributes)

    @classmethod
    def messaging(
        cls,
        provider: TracerProvider | None,
        subject: str,
        *,
        name: str = "",
        extra: Mapping[str, str] | None = None,
    ) -> ConsumerTrace:
        """Process spans of messages on ``subject`` (named ``process <subject>``)."""
        attrs: dict[str, str | int] = {
            **SYSTEM,
            "messaging.destination.name": subject,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            **(extra or {}),
        }
        return cls(provider, name or f"process {subject}", attrs)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start(self, headers: Mapping[str, str] | None, beat: int) -> Span | None:
        """A span under the sampled parent in ``headers``; None when not traced."""
        if self._tracer is None:
            return None
        parent = remote_parent(headers)
        if parent is None:
            return None
        return self._tracer.start_span(
            self._name,
            context=parent,
            kind=self._kind,
            attributes={**self._attrs, "venom.beat": beat},
        )


def end_span(span: Span, error: str = "") -> None:
    """End ``span``, marking it failed with ``error`` when given."""
    if error:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()
