"""B — BalanceCore: stabilisation (SPEC 2.5).

Stability comes from the variance of the estimator innovations when any
estimator reports them (context keys ``<estimator>.innovation*`` or
``<estimator>.nis*``; for NIS the excess of its mean over 1),
otherwise from feature volatility: the rolling variance of each feature's
first differences, divided by the feature's running scale so units do not
matter, averaged over features.

    stability = 1 / (1 + sensitivity · volatility)

It also recommends PID gains: the defaults scaled down as stability falls
(a shaky loop gets gentler control), never below ``min_gain_scale``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import Rolling, finite
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role


class BalanceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    window: Annotated[int, Meta(ge=3)] = 50
    warmup: Annotated[int, Meta(ge=2)] = 10
    sensitivity: Annotated[float, Meta(gt=0)] = 400.0
    innovation_sensitivity: Annotated[float, Meta(gt=0)] = 0.5
    kp: float = 0.6
    ki: float = 0.1
    kd: float = 0.05
    min_gain_scale: Annotated[float, Meta(gt=0, le=1)] = 0.25
    ignore_prefixes: tuple[str, ...] = ("arbiter.",)


class BalanceCore(Plugin[BalanceConfig]):
    """Stability from innovation variance or normalised feature volatility."""

    name: ClassVar[str] = "balance-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[BalanceConfig]] = BalanceConfig
    description: ClassVar[str] = "B core: stability from innovations or feature volatility"

    def __init__(
        self, config: BalanceConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.innovations: dict[str, Rolling] = {}
        self.diffs: dict[str, Rolling] = {}
        self.scale: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def _innovation_variance(self, estimates: dict[str, float]) -> tuple[float, int]:
        total, samples, seen = 0.0, 0, 0
        for key, value in estimates.items():
            plugin, _, field = key.partition(".")
            if plugin == self.name or not finite(value):
                continue  # never our own output: that would feed back on itself
            if not (field.startswith("innovation") or field.startswith("nis")):
                continue
            seen += 1
            roll = self.innovations.get(key)
            if roll is None:
                roll = self.innovations[key] = Rolling(self.config.window)
            roll.push(value)
            if len(roll) >= self.config.warmup:
                total += (
                    roll.variance() if not field.startswith("nis") else max(0.0, roll.mean() - 1.0)
                )
                samples += 1
        return (total / samples if samples else 0.0), (samples if seen else -1)

    def _volatility(self, features: dict[str, float]) -> tuple[float, int]:
        cfg = self.config
        total, samples = 0.0, 0
        for key, value in features.items():
            if not finite(value) or key.startswith(cfg.ignore_prefixes):
                continue
            scale = self.scale.get(key, 0.0)
            scale = max(abs(value), 0.99 * scale)
            self.scale[key] = scale
            prev = self.last.get(key)
            self.last[key] = value
            if prev is None:
                continue
            roll = self.diffs.get(key)
            if roll is None:
                roll = self.diffs[key] = Rolling(cfg.window)
            roll.push((value - prev) / scale if scale > 0 else 0.0)
            if len(roll) >= cfg.warmup:
                total += roll.variance()
                samples += 1
        return (total / samples if samples else 0.0), samples

    async def handle(self, pulse: Pulse) -> Reply:
        cfg = self.config
        inno, inno_samples = self._innovation_variance(pulse.context.estimates)
        vol, vol_samples = self._volatility(pulse.features)
        if inno_samples > 0:
            volatility, source, samples = inno * cfg.innovation_sensitivity, 1.0, inno_samples
        else:
            volatility, source, samples = vol * cfg.sensitivity, 0.0, vol_samples
        stability = 1.0 / (1.0 + volatility) if samples else 1.0
        scale = max(cfg.min_gain_scale, stability)
        return CoreReply(
            core="B",
            score=stability,
            details={
                "volatility": volatility,
                "samples": float(samples),
                "from_innovations": source,
                "kp": cfg.kp * scale,
                "ki": cfg.ki * scale,
                "kd": cfg.kd * scale,
            },
        )
