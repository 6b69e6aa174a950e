"""O — OptimizeCore: reinvestment (SPEC 2.5).

A performance index per beat from the stability (the previous beat's, in the
pulse context) and the throughput: the first of the ``throughput`` features
present (``plant.throughput``, else ``arbiter.rate`` if a sensor publishes
it; the arbiter itself keeps timing out of the features so runs replay), divided
by its running maximum so it lies in [0, 1] whatever its units::

    index = w_stability · stability + (1 − w_stability) · throughput / running max

The running maximum forgets ``max_decay`` of itself per beat, so one
outlier cannot pin the index near zero for good. A beat without any
throughput feature keeps the last normalised throughput; before the first
one the index is the stability alone.

The expected gain is the least-squares slope of the index over the last
``window`` beats, projected ``horizon`` beats ahead and clipped to [0, 1];
it is zero while the window is not yet full and when the trend is flat or
falling. Note that a throughput that keeps setting new maxima normalises to
a flat 1: the gain measures performance being *recovered* or stability
improving, not growth for its own sake.
"""

from __future__ import annotations

import math
from collections import deque
from itertools import repeat
from operator import mul, sub
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import centred, clamp01
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role


class OptimizeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The index's inputs and the trend's window and horizon."""

    #: Beats in the trend window.
    window: Annotated[int, Meta(ge=3, le=100_000)] = 30
    #: Beats ahead the trend is projected.
    horizon: Annotated[float, Meta(gt=0, le=1e6)] = 30.0
    #: Throughput features, first present wins.
    throughput: tuple[str, ...] = ("plant.throughput", "arbiter.rate")
    #: Share of the stability in the index; the rest is throughput.
    w_stability: Annotated[float, Meta(ge=0, le=1)] = 0.5
    #: Fraction of the running maximum forgotten per beat.
    max_decay: Annotated[float, Meta(ge=0, lt=1)] = 1e-4


class OptimizeCore(Plugin[OptimizeConfig]):
    """Expected gain from the trend of a performance index."""

    name: ClassVar[str] = "optimize-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[OptimizeConfig]] = OptimizeConfig
    description: ClassVar[str] = "O core: expected gain from the trend of stability and throughput"

    def __init__(
        self, config: OptimizeConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.index: deque[float] = deque(maxlen=self.config.window)
        #: Running maximum of each throughput feature.
        self.maxima: dict[str, float] = {}
        #: The last normalised throughput, None before the first.
        self.throughput: float | None = None
        #: i − x̄ for each place in the full window, and Σ (i − x̄)².
        self._x, self._x_var = centred(self.config.window)

    def _throughput(self, features: dict[str, float]) -> float | None:
        for key in self.config.throughput:
            value = features.get(key)
            if value is None or not math.isfinite(value):
                continue
            value = value if value > 0.0 else 0.0  # max(0.0, value)
            decayed = (1.0 - self.config.max_decay) * self.maxima.get(key, 0.0)
            peak = decayed if decayed > value else value  # max(value, decayed)
            self.maxima[key] = peak
            self.throughput = value / peak if peak > 0 else 0.0
            break
        return self.throughput

    def _slope(self) -> float:
        """Least-squares slope of the (full) index window, per beat."""
        index = self.index
        n = len(index)
        mean = math.fsum(index) / n
        return math.fsum(map(mul, self._x, map(sub, index, repeat(mean, n)))) / self._x_var

    async def handle(self, pulse: Pulse) -> Reply:
        cfg = self.config
        stability = pulse.context.stability
        stability = clamp01(stability) if math.isfinite(stability) else 1.0
        throughput = self._throughput(pulse.features)
        if throughput is None:
            index = stability
        else:
            index = cfg.w_stability * stability + (1.0 - cfg.w_stability) * throughput
        self.index.append(index)
        full = len(self.index) == cfg.window
        slope = self._slope() if full else 0.0
        gain = clamp01(slope * cfg.horizon)
        return CoreReply(
            core="O",
            score=gain,
            details={"index": index, "slope": slope, "samples": float(len(self.index))},
        )
