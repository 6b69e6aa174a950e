"""dissonance: a veto when the state drifts from its reference profile (SPEC 3).

ψ is the vector of the configured features, normalised; ref is the
configured profile (normalised) or, when none is given, the normalised mean
of ψ over a warm-up window. Then

    ΔE = 1 − |⟨ψ, ref⟩|²

and ΔE > ``threshold`` (0.05) is a veto with severity ``critical`` (which
makes the arbiter QUARANTINE). A zero or unmeasured state is not judged.
"""

from __future__ import annotations

import math
from operator import mul
from typing import Annotated, ClassVar, cast

import msgspec
from msgspec import Meta

from venom.plugins.sdk import Plugin, PluginContext, lookup
from venom.schemas import ConfigError, GuardVerdict, Pulse, Reply, Role


class DissonanceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    features: tuple[str, ...] = ("plant.y0", "plant.y1", "plant.y2")
    reference: tuple[float, ...] = ()
    warmup: Annotated[int, Meta(ge=1)] = 50
    threshold: Annotated[float, Meta(gt=0, lt=1)] = 0.05


def normalised(v: list[float]) -> list[float] | None:
    norm = math.sqrt(sum(map(mul, v, v)))
    return [x / norm for x in v] if norm > 0 else None


def delta_e(psi: list[float], ref: list[float]) -> float:
    """1 − |⟨ψ, ref⟩|² for unit vectors."""
    if len(psi) != len(ref):
        raise ValueError(f"ψ has {len(psi)} values, ref {len(ref)}")
    dot: float = sum(map(mul, psi, ref))
    de = 1.0 - dot * dot
    return de if de > 0.0 else 0.0


class DissonanceGuard(Plugin[DissonanceConfig]):
    """Critical veto when ΔE = 1 − |⟨ψ, ref⟩|² exceeds the threshold."""

    name: ClassVar[str] = "dissonance"
    role: ClassVar[Role] = "guard"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[DissonanceConfig]] = DissonanceConfig
    description: ClassVar[str] = "critical veto when the state leaves its reference profile"

    def __init__(
        self, config: DissonanceConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        cfg = self.config
        self.ref = normalised(list(cfg.reference)) if cfg.reference else None
        self._sum = [0.0] * len(cfg.features)
        self._count = 0

    @classmethod
    def check(cls, config: DissonanceConfig) -> None:
        """A reference profile has one value per feature."""
        if config.reference and len(config.reference) != len(config.features):
            raise ConfigError(
                f"reference has {len(config.reference)} values for {len(config.features)} features",
                key="reference",
            )

    async def handle(self, pulse: Pulse) -> Reply:
        raw = [lookup(pulse, f) for f in self.config.features]
        psi = None if None in raw else normalised(cast(list[float], raw))
        if psi is None:
            return GuardVerdict(guard=self.name, allow=True, reason="state not measured")
        if self.ref is None:
            self._sum = [s + p for s, p in zip(self._sum, psi, strict=True)]
            self._count += 1
            if self._count >= self.config.warmup:
                self.ref = normalised(self._sum)
            return GuardVerdict(guard=self.name, allow=True, reason="learning the reference")
        de = delta_e(psi, self.ref)
        if de > self.config.threshold:
            return GuardVerdict(
                guard=self.name,
                allow=False,
                severity="critical",
                reason=f"ΔE {de:.3f} > {self.config.threshold:g}",
                metric=de,
            )
        return GuardVerdict(guard=self.name, allow=True, metric=de)
