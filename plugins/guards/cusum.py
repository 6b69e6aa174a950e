"""cusum: a two-sided CUSUM guard on one signal (SPEC 3, guards).

The reference mean and spread come from a warm-up window; after it, with
z = (x − μ)/σ:

    S⁺ = max(0, S⁺ + z − k)        S⁻ = max(0, S⁻ − z − k)

The guard is alarmed while S⁺ > h or S⁻ > h, vetoes the beat while alarmed
and counts each new alarm as an event. For a mean shift of δ σ (δ > k) the
expected detection delay is about h / (δ − k) beats. Both sums are capped at
``cap · h`` so that the alarm clears a bounded time after the shift ends.
The signal is a feature or a context estimate (default ``plant.jitter``,
stationary while the loop holds the temperature; ``kalman.nis`` works too).
"""

from __future__ import annotations

import statistics
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.sdk import Plugin, PluginContext, lookup
from venom.schemas import GuardVerdict, Pulse, Reply, Role


class CusumConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    signal: str = "plant.jitter"
    warmup: Annotated[int, Meta(ge=2)] = 200
    k: Annotated[float, Meta(ge=0)] = 0.5
    h: Annotated[float, Meta(gt=0)] = 5.0
    #: S⁺ and S⁻ are capped at cap · h, so an alarm clears within about
    #: (cap − 1) · h / k beats after the shift ends, however large it was.
    cap: Annotated[float, Meta(ge=1)] = 2.0
    min_sigma: Annotated[float, Meta(gt=0)] = 1e-6


class CusumGuard(Plugin[CusumConfig]):
    """Vetoes while a two-sided CUSUM on the configured signal is alarmed."""

    name: ClassVar[str] = "cusum"
    role: ClassVar[Role] = "guard"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[CusumConfig]] = CusumConfig
    description: ClassVar[str] = "two-sided CUSUM on one signal; vetoes while alarmed"

    def __init__(
        self, config: CusumConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.warm: list[float] = []
        self.mu = 0.0
        self.sigma = 1.0
        self.s_hi = 0.0
        self.s_lo = 0.0
        self.alarmed = False
        self.events = 0

    def observe(self, x: float) -> bool:
        """Feed one value; True while alarmed."""
        cfg = self.config
        if len(self.warm) < cfg.warmup:
            self.warm.append(x)
            if len(self.warm) == cfg.warmup:
                self.mu = statistics.fmean(self.warm)
                self.sigma = max(cfg.min_sigma, statistics.stdev(self.warm))
            return False
        z = (x - self.mu) / self.sigma
        top = cfg.cap * cfg.h
        self.s_hi = min(top, max(0.0, self.s_hi + z - cfg.k))
        self.s_lo = min(top, max(0.0, self.s_lo - z - cfg.k))
        alarmed = self.s_hi > cfg.h or self.s_lo > cfg.h
        if alarmed and not self.alarmed:
            self.events += 1
        self.alarmed = alarmed
        return alarmed

    async def handle(self, pulse: Pulse) -> Reply:
        x = lookup(pulse, self.config.signal)
        if x is not None:
            self.observe(x)
        metric = max(self.s_hi, self.s_lo)
        if self.alarmed:
            side = "up" if self.s_hi > self.s_lo else "down"
            return GuardVerdict(
                guard=self.name,
                allow=False,
                severity="warning",
                reason=f"{self.config.signal} shifted {side} (CUSUM {metric:.1f} > "
                f"{self.config.h:g}, event {self.events})",
                metric=metric,
            )
        reason = "" if x is not None else f"{self.config.signal} not measured"
        return GuardVerdict(guard=self.name, allow=True, reason=reason, metric=metric)
