"""B — BalanceCore: stabilisation (SPEC 2.5).

Stability comes from the estimator innovations when any estimator reports
them, otherwise from the volatility of the features.

- **Innovations** (context keys ``<estimator>.innovation*`` and
  ``<estimator>.nis*``, never this core's own). An estimator that reports
  its NIS is judged by it, since the NIS is the innovation variance already
  normalised by the filter's own innovation covariance: its window mean
  divided by the measurement dimension (the number of the estimator's
  ``innovation*`` series) is 1 for a consistent filter, and the excess over
  1 is the volatility. An estimator without an NIS is judged by the window
  variance of its innovations, in its measurement's units. Volatility is
  the mean over the estimators; stability = 1 / (1 + innovation_sensitivity
  · volatility). A series that has not been reported for ``window`` beats
  (an estimator gone down) is dropped, and so is a feature.
- **Features** (every finite feature except the ignored prefixes): the
  window variance of each feature's first differences, each difference
  divided by the feature's running scale (its decaying peak magnitude) so
  units do not matter. Volatility is the *median* over the features, so
  one inherently noisy signal (a count, an error rate) does not make the
  whole plant look unstable; stability = 1 / (1 + sensitivity ·
  volatility).

Until some series has ``warmup`` samples, stability is 1.0. Both kinds of
window are updated every beat, so switching between them is seamless.

The recommended PID gains are the configured ones scaled by the stability
(a shaky loop gets gentler control), never below ``min_gain_scale`` of them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import CoreReply, Pulse, Reply, Role

#: Innovation and NIS values are clipped to this magnitude so squares stay finite.
MAX_VALUE = 1e12

Gain = Annotated[float, Meta(ge=0, le=1e3)]


class BalanceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Windows, sensitivities and the PID gains to scale."""

    #: Beats in every rolling window.
    window: Annotated[int, Meta(ge=3, le=100_000)] = 50
    #: Samples a series needs before it counts.
    warmup: Annotated[int, Meta(ge=2)] = 10
    #: Feature path: stability = 1 / (1 + sensitivity · median normalised volatility).
    sensitivity: Annotated[float, Meta(gt=0, le=1e9)] = 40.0
    #: Innovation path: stability = 1 / (1 + innovation_sensitivity · excess).
    innovation_sensitivity: Annotated[float, Meta(gt=0, le=1e9)] = 1.0
    #: Fraction of a feature's running scale forgotten per beat (decaying peak).
    scale_decay: Annotated[float, Meta(ge=0, lt=1)] = 0.01
    kp: Gain = 0.6
    ki: Gain = 0.1
    kd: Gain = 0.05
    #: The recommended gains never fall below this fraction of the configured ones.
    min_gain_scale: Annotated[float, Meta(gt=0, le=1)] = 0.25
    #: Features whose names start with these are not volatility (the arbiter's own timing).
    ignore_prefixes: tuple[str, ...] = ("arbiter.",)


class Window:
    """Mean and sample variance of the last ``size`` values, O(1) per push.

    Running sums, re-added exactly once every ``size`` pushes so that
    rounding cannot drift.
    """

    __slots__ = ("pushes", "squares", "total", "values")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.total = 0.0
        self.squares = 0.0
        self.pushes = 0

    def __len__(self) -> int:
        return len(self.values)

    def push(self, value: float) -> None:
        values = self.values
        if len(values) == values.maxlen:
            old = values[0]
            self.total -= old
            self.squares -= old * old
        values.append(value)
        self.total += value
        self.squares += value * value
        self.pushes += 1
        if self.pushes == values.maxlen:
            self.pushes = 0
            self.total = math.fsum(values)
            self.squares = math.fsum(v * v for v in values)

    def mean(self) -> float:
        return self.total / len(self.values) if self.values else 0.0

    def variance(self) -> float:
        n = len(self.values)
        if n < 2:
            return 0.0
        return max(0.0, (self.squares - self.total * self.total / n) / (n - 1))


class _Series:
    """One innovation or NIS series of one estimator."""

    __slots__ = ("estimator", "is_nis", "last", "window")

    def __init__(self, estimator: str, is_nis: bool, size: int) -> None:
        self.estimator = estimator
        self.is_nis = is_nis
        self.window = Window(size)
        self.last = 0


class _Feature:
    """First differences of one feature, normalised by its running scale."""

    __slots__ = ("last", "previous", "scale", "window")

    def __init__(self, size: int) -> None:
        self.window = Window(size)
        self.scale = 0.0
        self.previous: float | None = None
        self.last = 0


class BalanceCore(Plugin[BalanceConfig]):
    """Stability from estimator innovations, else normalised feature volatility."""

    name: ClassVar[str] = "balance-core"
    role: ClassVar[Role] = "core"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[BalanceConfig]] = BalanceConfig
    description: ClassVar[str] = "B core: stability from innovations/feature volatility, PID gains"

    def __init__(
        self, config: BalanceConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.beats = 0
        self.series: dict[str, _Series] = {}
        self.features: dict[str, _Feature] = {}

    def _innovations(self, estimates: dict[str, float]) -> tuple[float, int, int]:
        """(volatility, shortest window, series) over the live estimators; 0 series: none."""
        cfg = self.config
        for key, value in estimates.items():
            estimator, _, field = key.partition(".")
            if estimator == self.name or not math.isfinite(value):
                continue  # never our own output: that would feed back on itself
            is_nis = field.startswith("nis")
            if not (is_nis or field.startswith("innovation")):
                continue
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series(estimator, is_nis, cfg.window)
            series.window.push(min(MAX_VALUE, max(-MAX_VALUE, value)))
            series.last = self.beats
        # Per live estimator: [nis sum, nis series, variance sum, variance series, dimension].
        groups: dict[str, list[float]] = {}
        shortest, used = cfg.window, 0
        stale: list[str] = []
        for key, series in self.series.items():
            if self.beats - series.last >= cfg.window:
                stale.append(key)
                continue
            group = groups.setdefault(series.estimator, [0.0, 0.0, 0.0, 0.0, 0.0])
            window = series.window
            if not series.is_nis:
                group[4] += 1
            if len(window) < cfg.warmup:
                continue
            if series.is_nis:
                group[0] += window.mean()
                group[1] += 1
            else:
                group[2] += window.variance()
                group[3] += 1
            shortest = min(shortest, len(window))
            used += 1
        for key in stale:
            del self.series[key]
        total, estimators = 0.0, 0
        for nis, nis_n, var, var_n, dim in groups.values():
            if nis_n:
                total += max(0.0, nis / nis_n / max(1.0, dim) - 1.0)
            elif var_n:
                total += var / var_n
            else:
                continue
            estimators += 1
        if not estimators:
            return 0.0, 0, 0
        return total / estimators, shortest, used

    def _features(self, features: dict[str, float]) -> tuple[float, int, int]:
        """(median volatility, shortest window, series) over the live features."""
        cfg = self.config
        keep = 1.0 - cfg.scale_decay
        for key, value in features.items():
            if not math.isfinite(value) or key.startswith(cfg.ignore_prefixes):
                continue
            feature = self.features.get(key)
            if feature is None:
                feature = self.features[key] = _Feature(cfg.window)
            feature.scale = scale = max(abs(value), keep * feature.scale)
            previous = feature.previous
            feature.previous = value
            feature.last = self.beats
            if previous is not None:
                # Divide first: x − previous itself may overflow for huge values.
                feature.window.push(value / scale - previous / scale if scale > 0 else 0.0)
        volatilities: list[float] = []
        shortest = cfg.window
        stale: list[str] = []
        for key, feature in self.features.items():
            window = feature.window
            if self.beats - feature.last >= cfg.window:
                stale.append(key)
            elif len(window) >= cfg.warmup:
                volatilities.append(window.variance())
                shortest = min(shortest, len(window))
        for key in stale:
            del self.features[key]
        if not volatilities:
            return 0.0, 0, 0
        volatilities.sort()
        n = len(volatilities)
        mid = n // 2
        median = volatilities[mid] if n % 2 else (volatilities[mid - 1] + volatilities[mid]) / 2
        return median, shortest, n

    async def handle(self, pulse: Pulse) -> Reply:
        cfg = self.config
        self.beats += 1
        innovation, inno_samples, inno_series = self._innovations(pulse.context.estimates)
        feature, feat_samples, feat_series = self._features(pulse.features)
        if inno_series:
            volatility, samples, series = innovation, inno_samples, inno_series
            stability = 1.0 / (1.0 + cfg.innovation_sensitivity * volatility)
        elif feat_series:
            volatility, samples, series = feature, feat_samples, feat_series
            stability = 1.0 / (1.0 + cfg.sensitivity * volatility)
        else:
            volatility, samples, series, stability = 0.0, 0, 0, 1.0
        scale = max(cfg.min_gain_scale, stability)
        return CoreReply(
            core="B",
            score=stability,
            details={
                "volatility": volatility,
                "samples": float(samples),
                "series": float(series),
                "from_innovations": 1.0 if inno_series else 0.0,
                "kp": cfg.kp * scale,
                "ki": cfg.ki * scale,
                "kd": cfg.kd * scale,
            },
        )
