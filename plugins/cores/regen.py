"""R — RegenCore: repair planning (SPEC 2.5).

Urgency rises with what is broken: plugins marked down, plugins that failed,
were rejected or went missing over the last ``window`` beats (distinct
names), the ledger's lag, and anomalies (mesh anomalies plus the arbiter's
own failure counts)::

    load    = w_down·down + w_failing·failing + w_lag·lag/lag_scale + w_anomaly·anomalies
    urgency = 1 − exp(−load)

The estimated cost is the beats a repair would take: ``restart_beats`` per
down plugin, ``retry_beats`` per failing one, plus the lag to replay.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import finite
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role

NonNeg = Annotated[float, Meta(ge=0)]


class RegenConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    window: Annotated[int, Meta(ge=1)] = 20
    w_down: NonNeg = 0.5
    w_failing: NonNeg = 0.1
    w_lag: NonNeg = 0.3
    lag_scale: Annotated[float, Meta(gt=0)] = 100.0
    w_anomaly: NonNeg = 0.05
    restart_beats: NonNeg = 50.0
    retry_beats: NonNeg = 5.0


class RegenCore(Plugin[RegenConfig]):
    """Repair urgency from plugins down or failing, ledger lag and anomalies."""

    name: ClassVar[str] = "regen-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[RegenConfig]] = RegenConfig
    description: ClassVar[str] = "R core: repair urgency and cost"

    def __init__(
        self, config: RegenConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.recent: deque[frozenset[str]] = deque(maxlen=self.config.window)

    async def handle(self, pulse: Pulse) -> Reply:
        cfg = self.config
        ctx = pulse.context
        self.recent.append(frozenset(ctx.failing))
        down = set(ctx.down)
        failing = set().union(*self.recent) - down
        lag = max(0, ctx.ledger_lag)
        own = sum(
            v
            for k in ("arbiter.failed", "arbiter.missing")
            if finite(v := pulse.features.get(k, 0.0))
        )
        anomalies = len(ctx.anomalies) + max(0.0, own)
        load = (
            cfg.w_down * len(down)
            + cfg.w_failing * len(failing)
            + cfg.w_lag * lag / cfg.lag_scale
            + cfg.w_anomaly * anomalies
        )
        urgency = 1.0 - math.exp(-load)
        cost = cfg.restart_beats * len(down) + cfg.retry_beats * len(failing) + lag
        return CoreReply(
            core="R",
            score=urgency,
            details={
                "down": float(len(down)),
                "failing": float(len(failing)),
                "ledger_lag": float(lag),
                "anomalies": float(anomalies),
                "cost": cost,
            },
            notes=sorted(down | failing),
        )
