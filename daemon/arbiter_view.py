"""What the arbiter shows outside: its NATS micro service and its metric gauges.

Both read the arbiter's state when asked (a ``$SRV.STATS`` request, a
metrics collection), never per beat: :func:`arbiter_service` answers
``nats micro stats venom-arbiter`` with the beat's figures,
:func:`arbiter_gauges` feeds the observable instruments of
:mod:`venom.daemon.metrics`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from venom.daemon.metrics import Gauges
from venom.daemon.micro import EndpointStats, MicroService
from venom.daemon.version import VERSION
from venom.schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from venom.daemon.arbiter import Arbiter


def _finite(seconds: float) -> float:
    return seconds if math.isfinite(seconds) else 0.0


def arbiter_service(arbiter: Arbiter, endpoint: EndpointStats) -> MicroService:
    """The ``venom-arbiter`` service; ``endpoint`` counts control requests."""

    def stats_data() -> dict[str, object]:
        a = arbiter
        return {
            "beat": a.beat,
            "rate": round(a.stats.rate(), 3),
            "missed_ticks": a.scheduler.missed,
            "replies": a.stats.replies,
            "late": a.stats.late,
            "missing": a.stats.missing,
            "errors": a.stats.failed + a.stats.rejected,
            "plugins": len(a.discovery.plugins),
            "k": a.k,
            "p": a.p,
            "p50_beat_ns": int(a.stats.percentile(50) * 1e9),
            "p99_beat_ns": int(a.stats.percentile(99) * 1e9),
            "t_lambda_ns": int(_finite(a.period) * 1e9),
        }

    return MicroService(
        "venom-arbiter",
        VERSION,
        description="venom arbiter: the beat loop",
        metadata={
            "venom.role": "arbiter",
            "venom.schema": str(SCHEMA_VERSION),
            "venom.prefix": arbiter.subjects.prefix,
        },
        endpoints=[endpoint],
        stats_data=stats_data,
    )


def arbiter_gauges(arbiter: Arbiter) -> Gauges:
    """The gauges of :class:`~venom.daemon.metrics.BeatMetrics`, read from ``arbiter``."""
    a = arbiter
    gauges = Gauges()
    gauges.missed_ticks = lambda: a.scheduler.missed
    gauges.ledger_size = lambda: a.pulse_context.estimates.get("ledger.size")
    gauges.ledger_lag = lambda: a.pulse_context.estimates.get("ledger.lag")
    gauges.pid_error = lambda: a.last_pid.error
    gauges.period = lambda: _finite(a.period)
    gauges.live_plugins = lambda: len(a.discovery.plugins)
    gauges.beat_kept = lambda: int(a.load.report().fits)
    gauges.missed_ticks_pct = lambda: a.load.report().missed_ticks_pct
    gauges.missing_replies_pct = lambda: a.load.report().missing_pct
    return gauges
