"""R — RegenCore: repair planning (SPEC 2.5).

Urgency rises with what is broken: plugins marked down now, plugins that
failed, were rejected or went missing in any of the last ``window`` beats
(distinct names, the down ones not counted twice), the ledger's lag, and
anomalies (the mesh anomalies active this beat plus the arbiter's own
``arbiter.failed`` and ``arbiter.missing`` counts)::

    load    = w_down·down + w_failing·failing + w_lag·excess_lag/lag_scale + w_anomaly·anomalies
    urgency = 1 − exp(−load)

With the defaults one plugin down gives urgency 0.39 (above REPAIR_THRESHOLD
0.10), one plugin failing once 0.13 on that beat and 0.10 for the rest of
the window, a ledger 200 beats behind (100 beyond the allowance) 0.26.

The estimated cost is the beats a repair would take: each down plugin's
restart cost (``costs[name]``, else ``restart_beats``), ``retry_beats`` per
failing plugin, plus the ledger lag to catch up.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import clamp01
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role

#: Weights and costs: non-negative and finite (TOML could say inf).
NonNeg = Annotated[float, Meta(ge=0, le=1e6)]

#: The arbiter's own failure counts of the previous beat, read as anomalies.
OWN_COUNTS = ("arbiter.failed", "arbiter.missing")
#: A count above this is a broken feature; capping it keeps every detail finite.
MAX_COUNT = 1e6


class RegenConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Weights of the urgency terms and the repair costs."""

    #: Beats a failing plugin keeps counting after its last failure.
    window: Annotated[int, Meta(ge=1)] = 20
    #: Load per plugin marked down.
    w_down: NonNeg = 0.5
    #: Load per distinct plugin failing within the window.
    w_failing: NonNeg = 0.1
    #: Load per ``lag_scale`` beats of ledger lag.
    w_lag: NonNeg = 0.3
    #: Ledger lag that is normal pipelining (group commit, the stream's hop):
    #: only the lag beyond it counts, so a healthy ledger leaves the decision
    #: alone and two runs with the same seed decide alike (SPEC 8).
    lag_allowance: Annotated[int, Meta(ge=0)] = 100
    lag_scale: Annotated[float, Meta(gt=0)] = 100.0
    #: Load per anomaly (mesh anomaly, failed or missing reply).
    w_anomaly: NonNeg = 0.05
    #: Beats to restart a down plugin, unless ``costs`` names it.
    restart_beats: NonNeg = 50.0
    #: Per-plugin restart costs in beats (e.g. ``{ledger = 200}``).
    costs: dict[str, NonNeg] = {}
    #: Beats to retry a failing plugin.
    retry_beats: NonNeg = 5.0


class RegenCore(Plugin[RegenConfig]):
    """Repair urgency from plugins down or failing, ledger lag and anomalies."""

    name: ClassVar[str] = "regen-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[RegenConfig]] = RegenConfig
    description: ClassVar[str] = "R core: repair urgency from plugins down/failing, lag, anomalies"

    def __init__(
        self, config: RegenConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        #: The failing names of each of the last ``window`` beats.
        self.recent: deque[frozenset[str]] = deque(maxlen=self.config.window)
        #: How many of those beats name each plugin: their union, kept as beats come and go.
        self._failing: dict[str, int] = {}

    def _anomalies(self, pulse: Pulse) -> float:
        count = float(len(pulse.context.anomalies))
        for key in OWN_COUNTS:
            value = pulse.features.get(key)
            if value is not None and math.isfinite(value) and value > 0:
                count += value if value < MAX_COUNT else MAX_COUNT
        return count

    def _remember(self, failing: list[str]) -> set[str]:
        """Push this beat's failing names; every name failing within the window."""
        counts, recent = self._failing, self.recent
        if len(recent) == recent.maxlen:
            for name in recent[0]:
                if counts[name] == 1:
                    del counts[name]
                else:
                    counts[name] -= 1
        names = frozenset(failing)
        recent.append(names)
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        return set(counts)

    async def handle(self, pulse: Pulse) -> Reply:
        cfg = self.config
        ctx = pulse.context
        down = set(ctx.down)
        failing = self._remember(ctx.failing) - down
        lag = ctx.ledger_lag if ctx.ledger_lag > 0 else 0
        excess_lag = lag - cfg.lag_allowance if lag > cfg.lag_allowance else 0
        anomalies = self._anomalies(pulse)
        load = (
            cfg.w_down * len(down)
            + cfg.w_failing * len(failing)
            + cfg.w_lag * excess_lag / cfg.lag_scale
            + cfg.w_anomaly * anomalies
        )
        urgency = 1.0 - math.exp(-load)
        cost = (
            (sum(cfg.costs.get(name, cfg.restart_beats) for name in sorted(down)) if down else 0)
            + cfg.retry_beats * len(failing)
            + lag
        )
        return CoreReply(
            core="R",
            score=clamp01(urgency),
            details={
                "down": float(len(down)),
                "failing": float(len(failing)),
                "ledger_lag": float(lag),
                "anomalies": anomalies,
                "load": load,
                "cost": float(cost),
            },
            notes=sorted(down | failing),
        )
