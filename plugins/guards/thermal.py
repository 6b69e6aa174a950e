"""thermal: temperature forecast, cooling advice, OPTIMIZE blocked while hot (SPEC 3).

The temperature is forecast ``horizon`` beats ahead (default 5) from the
least-squares trend over the last ``window`` beats. The advice is ``low``,
``medium`` or ``high`` cooling as the forecast passes ``low``, ``medium`` and
``high`` (the plant applies it); from ``hot`` on the guard blocks OPTIMIZE
(more throughput means more heat). It vetoes when the forecast passes
``limit``, and while the trend rises faster than ``max_rise`` °C per beat
(a heat source the cooling cannot explain: a thermal spike is flagged long
before it reaches the limit).
"""

from __future__ import annotations

import itertools
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import Rolling
from venom.plugins.sdk import Plugin, PluginContext, lookup
from venom.schemas import Action, ConfigError, GuardVerdict, Pulse, Reply, Role


class ThermalConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    signal: str = "plant.temperature"
    horizon: Annotated[int, Meta(ge=1)] = 5
    window: Annotated[int, Meta(ge=2)] = 10
    low: float = 60.0
    medium: float = 70.0
    high: float = 78.0
    hot: float = 70.0
    limit: float = 85.0
    #: Vetoes while the trend rises faster than this, °C per beat (a heat
    #: source the cooling cannot explain); 0 turns the check off.
    max_rise: Annotated[float, Meta(ge=0)] = 0.3


class ThermalGuard(Plugin[ThermalConfig]):
    """Forecasts the temperature and advises cooling; blocks OPTIMIZE while hot."""

    name: ClassVar[str] = "thermal"
    role: ClassVar[Role] = "guard"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[ThermalConfig]] = ThermalConfig
    description: ClassVar[str] = "temperature forecast, cooling advice, no OPTIMIZE while hot"

    def __init__(
        self, config: ThermalConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        c = self.config
        self.history = Rolling(c.window)

    @classmethod
    def check(cls, config: ThermalConfig) -> None:
        """low <= medium <= high <= limit; the key is the first one out of order."""
        order = [(k, getattr(config, k)) for k in ("low", "medium", "high", "limit")]
        for (_, below), (key, value) in itertools.pairwise(order):
            if not below <= value:
                got = ", ".join(f"{k} = {v}" for k, v in order)
                raise ConfigError(
                    f"the thresholds must satisfy low <= medium <= high <= limit, got {got}",
                    key=key,
                )

    def forecast(self, slope: float | None = None) -> float:
        """Temperature expected ``horizon`` beats after the last one (``slope``: the trend's)."""
        h = self.history
        last = h.values[-1]
        if len(h) < 2:
            return last
        return last + (h.slope() if slope is None else slope) * self.config.horizon

    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        t = lookup(pulse, c.signal)
        if t is None:
            return GuardVerdict(guard=self.name, allow=True, reason=f"{c.signal} not measured")
        self.history.push(t)
        slope = self.history.slope()  # once: the forecast and the rise share it
        pred = self.forecast(slope)
        advice = (
            "high"
            if pred >= c.high
            else "medium"
            if pred >= c.medium
            else "low"
            if pred >= c.low
            else ""
        )
        blocks: list[Action] = ["OPTIMIZE"] if max(pred, t) >= c.hot else []
        rise = slope if len(self.history) >= c.window else 0.0
        problem = ""
        if max(pred, t) > c.limit:
            problem = f"forecast {pred:.1f} above limit {c.limit:g}"
        elif c.max_rise and rise > c.max_rise:
            problem = f"heating at {rise:.2f}/beat (more than {c.max_rise:g})"
        if problem:
            return GuardVerdict(
                guard=self.name,
                allow=False,
                severity="warning",
                reason=problem,
                metric=pred,
                blocks=blocks,
                recommend=advice,
            )
        return GuardVerdict(
            guard=self.name,
            allow=True,
            metric=pred,
            blocks=blocks,
            recommend=advice,
            reason=f"forecast {pred:.1f}" if advice else "",
        )
