"""O — OptimizeCore: reinvestment (SPEC 2.5).

A performance index per beat from stability (the previous decision's) and
throughput (feature ``plant.throughput`` by default) relative to its slow
EWMA reference, clipped to [0, 4]; stability alone when there is none::

    index = w_stability·stability + (1 − w_stability)·throughput / reference

The expected gain is the positive least-squares trend of the index over the
window, projected ``horizon`` beats ahead and clipped to [0, 1]; zero until
the window is full or when the trend is flat or falling.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import Ewma, Rolling, finite
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role


class OptimizeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    window: Annotated[int, Meta(ge=3)] = 30
    horizon: Annotated[float, Meta(gt=0)] = 30.0
    throughput: str = "plant.throughput"
    w_stability: Annotated[float, Meta(ge=0, le=1)] = 0.5
    reference_alpha: Annotated[float, Meta(gt=0, le=1)] = 0.01


class OptimizeCore(Plugin[OptimizeConfig]):
    """Expected gain from the trend of a performance index."""

    name: ClassVar[str] = "optimize-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[OptimizeConfig]] = OptimizeConfig
    description: ClassVar[str] = "O core: expected gain from the performance trend"

    def __init__(
        self, config: OptimizeConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.index = Rolling(self.config.window)
        self.reference = Ewma(self.config.reference_alpha)

    async def handle(self, pulse: Pulse) -> Reply:
        cfg = self.config
        stability = pulse.context.stability if finite(pulse.context.stability) else 1.0
        stability = min(1.0, max(0.0, stability))
        value = pulse.features.get(cfg.throughput)
        if value is not None and finite(value):
            ref = self.reference.mean if self.reference.count else value
            norm = min(4.0, max(0.0, value / ref)) if ref > 0 else 0.0
            self.reference.update(value)
            index = cfg.w_stability * stability + (1 - cfg.w_stability) * norm
        else:
            index = stability
        self.index.push(index)
        slope = self.index.slope()
        gain = min(1.0, max(0.0, slope * cfg.horizon)) if self.index.full else 0.0
        return CoreReply(
            core="O",
            score=gain,
            details={"index": index, "slope": slope, "samples": float(len(self.index))},
        )
