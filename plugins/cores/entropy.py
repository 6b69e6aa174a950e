"""E — EntropyCore: risk scanning (SPEC 2.5).

Every feature keeps an EWMA baseline of its mean and variance. After
``warmup`` beats, a value with |z| > ``z_threshold`` against the baseline
*before* this beat is an anomaly. Anomalous values update the baseline at a
reduced rate (``anomaly_alpha``), so a sustained shift stays visible for a
while instead of being learned away at once. Mesh anomalies in the pulse
context count once for every beat they are active.

    threat = 1 − exp(−anomalies / 3)
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import Ewma, finite
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role


class EntropyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    alpha: Annotated[float, Meta(gt=0, lt=1)] = 0.05
    anomaly_alpha: Annotated[float, Meta(ge=0, lt=1)] = 0.005
    warmup: Annotated[int, Meta(ge=2)] = 20
    z_threshold: Annotated[float, Meta(gt=0)] = 3.0
    #: std floor relative to |mean| (and absolute), so a constant feature is not 0/0.
    rel_floor: Annotated[float, Meta(ge=0)] = 1e-3
    abs_floor: Annotated[float, Meta(gt=0)] = 1e-9
    #: Features whose names start with these are ignored (e.g. the arbiter's own counts).
    ignore_prefixes: tuple[str, ...] = ("arbiter.",)


class EntropyCore(Plugin[EntropyConfig]):
    """Counts anomalous features and mesh anomalies; threat = 1 − exp(−n/3)."""

    name: ClassVar[str] = "entropy-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[EntropyConfig]] = EntropyConfig
    description: ClassVar[str] = "E core: anomalies (|z| > 3 vs EWMA) and threat"

    def __init__(
        self, config: EntropyConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.baselines: dict[str, Ewma] = {}

    async def handle(self, pulse: Pulse) -> Reply:
        cfg = self.config
        anomalies = 0
        max_z = 0.0
        details: dict[str, float] = {}
        flagged: list[str] = []
        for feature, value in pulse.features.items():
            if not finite(value) or feature.startswith(cfg.ignore_prefixes):
                continue
            base = self.baselines.get(feature)
            if base is None:
                base = self.baselines[feature] = Ewma(cfg.alpha)
            anomalous = False
            if base.count >= cfg.warmup:
                floor = max(cfg.abs_floor, cfg.rel_floor * abs(base.mean))
                z = base.z(value, floor)
                max_z = max(max_z, abs(z))
                if abs(z) > cfg.z_threshold:
                    anomalous = True
                    anomalies += 1
                    details[f"z.{feature}"] = z
                    flagged.append(feature)
            if anomalous:
                base.alpha = cfg.anomaly_alpha
                base.update(value)
                base.alpha = cfg.alpha
            else:
                base.update(value)
        mesh = len(pulse.context.anomalies)
        total = anomalies + mesh
        threat = 1.0 - math.exp(-total / 3.0)
        details.update(
            anomalies=float(total), features=float(anomalies), mesh=float(mesh), max_z=max_z
        )
        return CoreReply(core="E", score=threat, details=details, notes=sorted(flagged))
