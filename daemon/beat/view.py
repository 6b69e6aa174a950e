"""What the arbiter shows outside: its NATS micro service and its metric gauges.

Both read an :class:`ArbiterSnapshot` when asked (a ``$SRV.STATS``
request, a metrics collection), never per beat: :func:`arbiter_service`
answers ``nats micro stats venom-arbiter`` with the beat's figures,
:func:`arbiter_gauges` feeds the observable instruments of
:mod:`venom.daemon.observe.metrics`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from venom.daemon.beat.snapshot import ArbiterSnapshot
from venom.daemon.bus.micro import EndpointStats, MicroService
from venom.daemon.config.version import VERSION
from venom.daemon.observe.metrics import Gauges
from venom.schemas import SCHEMA_VERSION

Snapshot = Callable[[], ArbiterSnapshot]


def arbiter_service(snapshot: Snapshot, prefix: str, endpoint: EndpointStats) -> MicroService:
    """The ``venom-arbiter`` service; ``endpoint`` counts control requests."""

    def stats_data() -> dict[str, object]:
        s = snapshot()
        return {
            "beat": s.beat,
            "rate": s.rate,
            "missed_ticks": s.missed_ticks,
            "replies": s.replies,
            "late": s.late,
            "missing": s.missing,
            "errors": s.errors,
            "plugins": s.live_plugins,
            "k": s.k,
            "p": s.p,
            "p50_beat_ns": int(s.p50_beat_s * 1e9),
            "p99_beat_ns": int(s.p99_beat_s * 1e9),
            "t_lambda_ns": int(s.period * 1e9),
        }

    return MicroService(
        "venom-arbiter",
        VERSION,
        description="venom arbiter: the beat loop",
        metadata={
            "venom.role": "arbiter",
            "venom.schema": str(SCHEMA_VERSION),
            "venom.prefix": prefix,
        },
        endpoints=[endpoint],
        stats_data=stats_data,
    )


class _Recent:
    """The last snapshot while it is fresh: one collection reads every gauge from one."""

    def __init__(self, take: Snapshot, max_age: float = 0.1) -> None:
        self.take = take
        self.max_age = max_age
        self.taken = -math.inf
        self.last: ArbiterSnapshot | None = None

    def __call__(self) -> ArbiterSnapshot:
        now = time.monotonic()
        if self.last is None or now - self.taken > self.max_age:
            self.last, self.taken = self.take(), now
        return self.last


def arbiter_gauges(take: Snapshot) -> Gauges:
    """The gauges of :class:`~venom.daemon.observe.metrics.BeatMetrics`, from snapshots."""
    snapshot = _Recent(take)
    gauges = Gauges()
    gauges.missed_ticks = lambda: snapshot().missed_ticks
    gauges.ledger_size = lambda: snapshot().ledger_size
    gauges.ledger_lag = lambda: snapshot().ledger_lag
    gauges.pid_error = lambda: snapshot().pid_error
    gauges.period = lambda: snapshot().period
    gauges.live_plugins = lambda: snapshot().live_plugins
    gauges.beat_kept = lambda: int(snapshot().load.fits)
    gauges.missed_ticks_pct = lambda: snapshot().load.missed_ticks_pct
    gauges.missing_replies_pct = lambda: snapshot().load.missing_pct
    return gauges
