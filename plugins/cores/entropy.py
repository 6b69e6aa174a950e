"""E — EntropyCore: risk scanning (SPEC 2.5).

Every feature keeps an EWMA baseline of its mean and variance. After
``warmup`` values of a feature, a value with |z| > ``z_threshold`` against
the baseline as it stood *before* this value is an anomaly. Then::

    anomalies = anomalous features + mesh anomalies active this beat
    threat    = 1 − exp(−anomalies / 3)

Baseline choices:

- The first values are averaged plainly (the EWMA weight is
  max(alpha, 1/n) for the n-th value), so the baseline after warm-up is the
  mean and variance of the warm-up values, not a mean stuck at the first
  value with a variance still growing from zero.
- An anomalous value enters the baseline winsorised (as if it were exactly
  ``z_threshold`` standard deviations out) and at the reduced rate
  ``anomaly_alpha`` instead of ``alpha``. One spike barely moves the
  baseline; a sustained shift stays visible for a while (with the defaults
  and Gaussian noise, some 25 beats for a 10σ step, 50 for a 20σ one)
  instead of being learned away at once, and is learned in the end, as is
  a lasting rise of the noise level (clipped deviations still widen the
  variance).
- The standard deviation is floored at ``rel_floor``·|mean| (and
  ``abs_floor``), so a constant feature is not 0/0 and its tiny rounding
  changes are not anomalies.

Mesh anomalies ride in the pulse context for as many beats as each one's
``beats`` says; each counts once per beat it is there. Features with an
ignored prefix (by default the arbiter's own timing and counts) are not
scanned.
"""

from __future__ import annotations

import math
from math import isfinite, sqrt
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import SelectedKeys
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role

#: Values are clipped to this magnitude so that squared deviations stay finite.
MAX_VALUE = 1e150


class EntropyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Baseline rates, warm-up, threshold and variance floors."""

    #: EWMA weight of a normal value.
    alpha: Annotated[float, Meta(gt=0, lt=1)] = 0.05
    #: EWMA weight of an anomalous value (0: anomalies never enter the baseline).
    anomaly_alpha: Annotated[float, Meta(ge=0, lt=1)] = 0.005
    #: Values of a feature before it can be flagged.
    warmup: Annotated[int, Meta(ge=2)] = 20
    z_threshold: Annotated[float, Meta(gt=0, le=1e6)] = 3.0
    #: Standard deviation floor relative to |mean|.
    rel_floor: Annotated[float, Meta(ge=0, le=1e6)] = 1e-3
    #: Absolute standard deviation floor.
    abs_floor: Annotated[float, Meta(gt=0, le=1e6)] = 1e-9
    #: Features whose names start with these are not scanned.
    ignore_prefixes: tuple[str, ...] = ("arbiter.",)


class Baseline:
    """EWMA mean and variance of one feature; :meth:`EntropyCore.handle` updates it."""

    __slots__ = ("count", "mean", "var")

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.count = 0


class EntropyCore(Plugin[EntropyConfig]):
    """Counts anomalous features and mesh anomalies; threat = 1 − exp(−n/3)."""

    name: ClassVar[str] = "entropy-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[EntropyConfig]] = EntropyConfig
    description: ClassVar[str] = "E core: anomalies (|z| > 3 vs EWMA baselines) and threat"

    def __init__(
        self, config: EntropyConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.baselines: dict[str, Baseline] = {}
        prefixes = self.config.ignore_prefixes
        self._scanned = SelectedKeys(lambda key: not key.startswith(prefixes))

    async def handle(self, pulse: Pulse) -> Reply:
        # Comparisons rather than min/max and abs calls: this loop runs for every
        # feature every beat, and those calls cost more than the arithmetic.
        cfg = self.config
        warmup, threshold = cfg.warmup, cfg.z_threshold
        rel_floor, abs_floor = cfg.rel_floor, cfg.abs_floor
        normal_alpha, anomaly_alpha = cfg.alpha, cfg.anomaly_alpha
        baselines = self.baselines
        found = 0
        max_z = 0.0
        details: dict[str, float] = {}
        flagged: list[str] = []
        features = pulse.features
        for feature in self._scanned(features):
            value = features[feature]
            if not isfinite(value):
                continue
            if value > MAX_VALUE:
                value = MAX_VALUE
            elif value < -MAX_VALUE:
                value = -MAX_VALUE
            base = baselines.get(feature)
            if base is None:
                base = baselines[feature] = Baseline()
            alpha = normal_alpha
            if base.count >= warmup:
                mean = base.mean
                std = sqrt(base.var)
                floor = rel_floor * abs(mean)
                if floor > std:
                    std = floor
                if abs_floor > std:
                    std = abs_floor
                z = (value - mean) / std
                size = abs(z)
                if size > max_z:
                    max_z = size
                if size > threshold:
                    found += 1
                    details[f"z.{feature}"] = z
                    flagged.append(feature)
                    # Winsorised, slow: the baseline leans towards it, it does not jump.
                    value = mean + math.copysign(threshold * std, z)
                    alpha = anomaly_alpha
            # West's incremental form, weight max(alpha, 1/n) for the n-th value.
            base.count = count = base.count + 1
            weight = 1.0 / count
            if alpha >= weight:
                weight = alpha
            diff = value - base.mean
            incr = weight * diff
            base.mean += incr
            base.var = (1.0 - weight) * (base.var + diff * incr)
        mesh = len(pulse.context.anomalies)
        anomalies = found + mesh
        threat = 1.0 - math.exp(-anomalies / 3.0)
        details.update(
            anomalies=float(anomalies), features=float(found), mesh=float(mesh), max_z=max_z
        )
        return CoreReply(core="E", score=threat, details=details, notes=sorted(flagged))
