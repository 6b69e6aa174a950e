"""What the arbiter shows to its readers: one frozen :class:`ArbiterSnapshot`.

Control requests (``venom status``), the NATS micro stats, the metric
gauges and the live line read a snapshot that :meth:`Arbiter.snapshot
<venom.daemon.beat.arbiter.Arbiter.snapshot>` takes when they ask (anyio's
``statistics()`` objects are the model), never the arbiter's insides, and
nothing here imports the arbiter back. Snapshots are taken on request,
never per beat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from venom.daemon.beat.discovery import LivePlugin
from venom.daemon.beat.gather import PluginHealth
from venom.schemas import Decision, LoadReport, PluginStatus, Weights


class ArbiterSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The arbiter's state at one moment."""

    prefix: str
    beat: int
    #: Beats per second over the last second.
    rate: float
    #: Seconds per beat now (T_Λ, a fixed period, or 0 back to back); finite.
    period: float
    period_mode: str
    paused: bool
    #: Why beats are held ("" when they are not).
    holding: str
    #: What keeps beat records from being stored, at once (a full disk; "" if nothing).
    storage: str
    connected: bool
    weights: Weights
    pid_error: float
    pid_stable: bool
    missed_ticks: int
    k: int
    p: int
    replies: int
    late: int
    missing: int
    #: Replies that failed or were rejected.
    errors: int
    p50_beat_s: float
    p99_beat_s: float
    plugins: tuple[PluginStatus, ...]
    decisions: Mapping[str, int]
    last_decision: Decision | None
    load: LoadReport
    #: The ledger's size and lag as its last reply said (None before one).
    ledger_size: float | None
    ledger_lag: float | None
    #: Plugins discovery sees live.
    live_plugins: int
    #: HA (SPEC 2.6): leader or standby, this arbiter's epoch, the leader's, since which beat.
    role: str = "leader"
    epoch: str = ""
    leader: str = ""
    leader_since: int = 0

    def line(self) -> str:
        """The compact live line (``venom run`` on a terminal)."""
        acts = " ".join(f"{a[:4]}={n}" for a, n in sorted(self.decisions.items()))
        return (
            f"beat {self.beat} | {self.rate:7.1f}/s | {acts or '-'} | missed {self.missed_ticks} "
            f"| late {self.late} missing {self.missing} bad {self.errors} "
            f"| p50 {self.p50_beat_s * 1e3:.2f} ms p99 {self.p99_beat_s * 1e3:.2f} ms"
        )


def period_mode(period: float | None) -> str:
    """How ``beat.period`` sets the period: ``t_lambda``, ``back-to-back`` or ``fixed``."""
    if period is None:
        return "t_lambda"
    return "back-to-back" if period == 0 else "fixed"


def finite(seconds: float) -> float:
    return seconds if math.isfinite(seconds) else 0.0


def plugin_statuses(
    live: Mapping[str, LivePlugin], health: Mapping[str, PluginHealth]
) -> tuple[PluginStatus, ...]:
    """Every plugin discovery or the gather knows, by name."""
    out = []
    for name in sorted(live.keys() | health.keys()):
        entry = live.get(name)
        h = health.get(name)
        out.append(
            PluginStatus(
                name=name,
                role=entry.role if entry else "",
                version=entry.version if entry else "",
                instances=len(entry.instances) if entry else 0,
                last_latency_ms=(
                    round(h.last_latency * 1e3, 4) if h and h.last_latency is not None else None
                ),
                down=bool(h and h.down),
                misses=h.missed if h else 0,
                errors=h.failed if h else 0,
                rejected=h.rejected if h else 0,
                late=h.late if h else 0,
            )
        )
    return tuple(out)
