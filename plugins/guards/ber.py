"""ber: a bit-error-rate guard from jitter, with tiered, adaptive margins (SPEC 3).

The BER surrogate treats the timing jitter (RMS, in unit intervals) as
Gaussian noise on the sampling instant with half a unit interval of eye:

    BER = ½ · erfc(0.5 / (√2 · jitter))

The tier (``gold`` 1e-12, ``silver`` 1e-9, ``bronze`` 1e-6 by default) sets
the allowed BER; the margin in force is that times an adaptive factor. A
beat above the margin is a violation; the guard throttles (vetoes, and
blocks OPTIMIZE) only after ``consecutive`` violations in a row (3), so one
noisy beat does not throttle. After a throttle episode the factor tightens
(× ``tighten``, floored at ``min_factor``); after ``relax_after`` clean beats
it loosens back (× ``loosen``, capped at 1).
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.sdk import Plugin, PluginContext, lookup
from venom.schemas import ConfigError, GuardVerdict, Pulse, Reply, Role


def ber_from_jitter(jitter_ui: float) -> float:
    """½·erfc(0.5 / (√2·σ)) for RMS jitter σ in unit intervals (0 jitter → 0)."""
    if jitter_ui <= 0:
        return 0.0
    return 0.5 * math.erfc(0.5 / (math.sqrt(2.0) * jitter_ui))


class BerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    signal: str = "plant.jitter"
    tier: str = "silver"
    tiers: dict[str, float] = msgspec.field(
        default_factory=lambda: {"gold": 1e-12, "silver": 1e-9, "bronze": 1e-6}
    )
    consecutive: Annotated[int, Meta(ge=1)] = 3
    tighten: Annotated[float, Meta(gt=0, le=1)] = 0.5
    loosen: Annotated[float, Meta(ge=1)] = 1.25
    min_factor: Annotated[float, Meta(gt=0, le=1)] = 0.01
    relax_after: Annotated[int, Meta(ge=1)] = 100


class BerGuard(Plugin[BerConfig]):
    """Throttles after consecutive BER violations of the tier's adaptive margin."""

    name: ClassVar[str] = "ber"
    role: ClassVar[Role] = "guard"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[BerConfig]] = BerConfig
    description: ClassVar[str] = "BER from jitter; throttles after 3 violations, adaptive margin"

    def __init__(
        self, config: BerConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        self.factor = 1.0
        self.streak = 0
        self.clean = 0
        self.throttling = False

    @classmethod
    def check(cls, config: BerConfig) -> None:
        """``tier`` names one of ``tiers``."""
        if config.tier not in config.tiers:
            known = ", ".join(sorted(config.tiers)) or "none: tiers is empty"
            raise ConfigError(f"{config.tier!r} is not one of the tiers ({known})", key="tier")

    @property
    def margin(self) -> float:
        return self.config.tiers[self.config.tier] * self.factor

    def observe(self, jitter: float) -> tuple[float, bool]:
        """Feed one jitter value; (BER, throttling)."""
        c = self.config
        ber = ber_from_jitter(jitter)
        if ber > self.margin:
            self.streak += 1
            self.clean = 0
        else:
            if self.throttling:  # the episode ended: be stricter next time
                self.factor = max(c.min_factor, self.factor * c.tighten)
            self.streak = 0
            self.clean += 1
            if self.clean >= c.relax_after and self.factor < 1.0:
                self.factor = min(1.0, self.factor * c.loosen)
                self.clean = 0
        self.throttling = self.streak >= c.consecutive
        return ber, self.throttling

    async def handle(self, pulse: Pulse) -> Reply:
        jitter = lookup(pulse, self.config.signal)
        if jitter is None:
            return GuardVerdict(
                guard=self.name, allow=True, reason=f"{self.config.signal} not measured"
            )
        ber, throttle = self.observe(jitter)
        if throttle:
            return GuardVerdict(
                guard=self.name,
                allow=False,
                severity="warning",
                metric=ber,
                reason=f"BER {ber:.2e} > {self.margin:.2e} for {self.streak} beats",
                blocks=["OPTIMIZE"],
            )
        return GuardVerdict(guard=self.name, allow=True, metric=ber)
