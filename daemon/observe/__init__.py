"""The observe face: logs, problems said once, traces, metrics, the one percentile.

Plugins import from here, never from a module inside. Everything but
``TelemetryProviders`` uses OpenTelemetry's API only; the providers (the
SDK) are built once per process. Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.observe.logs import setup_logging, write_stderr
    from venom.daemon.observe.metrics import BeatMetrics, Gauges
    from venom.daemon.observe.percentiles import percentile
    from venom.daemon.observe.problems import ProblemLog
    from venom.daemon.observe.providers import TelemetryProviders
    from venom.daemon.observe.tracing import (
        SYSTEM,
        BeatTrace,
        ConsumerTrace,
        end_span,
        format_traceparent,
        get_tracer,
        parse_traceparent,
        remote_parent,
    )

#: Each public name and the module that defines it.
_WHERE = {
    "setup_logging": "venom.daemon.observe.logs",
    "write_stderr": "venom.daemon.observe.logs",
    "BeatMetrics": "venom.daemon.observe.metrics",
    "Gauges": "venom.daemon.observe.metrics",
    "percentile": "venom.daemon.observe.percentiles",
    "ProblemLog": "venom.daemon.observe.problems",
    "TelemetryProviders": "venom.daemon.observe.providers",
    "SYSTEM": "venom.daemon.observe.tracing",
    "BeatTrace": "venom.daemon.observe.tracing",
    "ConsumerTrace": "venom.daemon.observe.tracing",
    "end_span": "venom.daemon.observe.tracing",
    "format_traceparent": "venom.daemon.observe.tracing",
    "get_tracer": "venom.daemon.observe.tracing",
    "parse_traceparent": "venom.daemon.observe.tracing",
    "remote_parent": "venom.daemon.observe.tracing",
}

__all__ = [
    "SYSTEM",
    "BeatMetrics",
    "BeatTrace",
    "ConsumerTrace",
    "Gauges",
    "ProblemLog",
    "TelemetryProviders",
    "end_span",
    "format_traceparent",
    "get_tracer",
    "parse_traceparent",
    "percentile",
    "remote_parent",
    "setup_logging",
    "write_stderr",
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
