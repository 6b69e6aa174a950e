"""gate: a non-compensatory gate over configured metric bounds (SPEC 3, guards).

Every configured metric must be present and inside its [low, high] bounds;
one bad metric vetoes, however good the others are (no averaging). A
missing metric fails. The score is the L∞ norm of the normalised
violations: for each metric max(0, low − x, x − high) / (high − low), a
missing one counting 1; the verdict's severity is ``critical`` when the
score exceeds ``critical_above``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.sdk import Plugin, lookup
from venom.schemas import GuardVerdict, Pulse, Reply, Role


class Bounds(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    low: float
    high: float


class GateConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    bounds: dict[str, Bounds] = msgspec.field(
        default_factory=lambda: {
            "plant.temperature": Bounds(low=0.0, high=85.0),
            "plant.coherence": Bounds(low=0.5, high=1.0),
            # The measurement itself: a sensor dropout is a missing metric.
            "plant.y0": Bounds(low=0.0, high=2.0),
        }
    )
    critical_above: Annotated[float, Meta(ge=0)] = 1.0


def gate_score(values: dict[str, float | None], bounds: dict[str, Bounds]) -> tuple[float, str]:
    """(L∞ of normalised violations, the worst metric); missing counts 1."""
    worst, worst_name = 0.0, ""
    for name, b in bounds.items():
        x = values.get(name)
        if x is None:
            v = 1.0
        else:
            span = b.high - b.low
            v = max(0.0, b.low - x, x - b.high) / span if span > 0 else float(x != b.low)
        if v > worst:
            worst, worst_name = v, name
    return worst, worst_name


class GateGuard(Plugin[GateConfig]):
    """Vetoes when any configured metric is missing or out of bounds."""

    name: ClassVar[str] = "gate"
    role: ClassVar[Role] = "guard"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[GateConfig]] = GateConfig
    description: ClassVar[str] = "non-compensatory gate: every metric within bounds"

    async def handle(self, pulse: Pulse) -> Reply:
        bounds = self.config.bounds
        values = {name: lookup(pulse, name) for name in bounds}
        score, worst = gate_score(values, bounds)
        if score == 0.0:
            return GuardVerdict(guard=self.name, allow=True, metric=0.0)
        what = "missing" if values.get(worst) is None else f"{values[worst]:g} out of bounds"
        return GuardVerdict(
            guard=self.name,
            allow=False,
            severity="critical" if score > self.config.critical_above else "warning",
            reason=f"{worst} {what}",
            metric=score,
        )
