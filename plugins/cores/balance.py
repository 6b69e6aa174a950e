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
from math import isfinite
from operator import mul
from typing import Annotated, ClassVar, NamedTuple

import msgspec
from msgspec import Meta

from venom.plugins.cores.stats import SelectedKeys
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
    rounding cannot drift. The sums are kept only while ``summed``: a window
    whose statistics nobody reads (an innovation beside its estimator's
    NIS, a feature while the innovations judge) just keeps its values, and
    sums them exactly (``math.fsum``) the first time it is read again.
    """

    __slots__ = ("pushes", "size", "squares", "summed", "total", "values")

    def __init__(self, size: int, *, summed: bool = True) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.size = size
        self.summed = summed
        self.total = 0.0
        self.squares = 0.0
        self.pushes = 0

    def __len__(self) -> int:
        return len(self.values)

    def push(self, value: float) -> None:
        """Add ``value``. (BalanceCore's loops have this inlined: keep them alike.)"""
        values = self.values
        if not self.summed:
            values.append(value)
            return
        if len(values) == self.size:
            old = values[0]
            self.total -= old
            self.squares -= old * old
        values.append(value)
        self.total += value
        self.squares += value * value
        self.pushes += 1
        if self.pushes == self.size:
            self.readd()

    def readd(self) -> None:
        """Sums afresh from the values, once every ``size`` pushes (and when summing starts)."""
        values = self.values
        self.summed = True
        self.pushes = 0
        self.total = math.fsum(values)
        self.squares = math.fsum(map(mul, values, values))

    def mean(self) -> float:
        if not self.summed:
            self.readd()
        n = len(self.values)
        return self.total / n if n else 0.0

    def variance(self) -> float:
        if not self.summed:
            self.readd()
        n = len(self.values)
        if n < 2:
            return 0.0
        variance = (self.squares - self.total * self.total / n) / (n - 1)
        return variance if variance > 0.0 else 0.0


class _Series(Window):
    """One innovation or NIS series of one estimator."""

    __slots__ = ("estimator", "is_nis", "last")

    def __init__(self, estimator: str, is_nis: bool, size: int) -> None:
        super().__init__(size)
        self.estimator = estimator
        self.is_nis = is_nis
        self.last = 0


class _Feature(Window):
    """First differences of one feature, normalised by its running scale."""

    __slots__ = ("last", "previous", "scale")

    def __init__(self, size: int, *, summed: bool) -> None:
        super().__init__(size, summed=summed)
        self.scale = 0.0
        self.previous: float | None = None
        self.last = 0


class _Estimator:
    """The live series of one estimator past warm-up, as the volatility reads them."""

    __slots__ = ("dimension", "innovations", "nis")

    def __init__(self) -> None:
        self.nis: list[Window] = []
        self.innovations: list[Window] = []
        #: Its innovation series, warm or not: the measurement dimension.
        self.dimension = 0

    def volatility(self) -> float | None:
        """NIS excess if it reports an NIS, else innovation variance; None: nothing warm."""
        if self.nis:
            total = 0.0
            for window in self.nis:  # summed from the start, past warm-up: never empty
                total += window.total / len(window.values)
            dimension = self.dimension if self.dimension > 1 else 1.0
            excess = total / len(self.nis) / dimension - 1.0
            return excess if excess > 0.0 else 0.0
        if self.innovations:
            total = 0.0
            for window in self.innovations:
                total += window.variance()
            return total / len(self.innovations)
        return None


class _Plan(NamedTuple):
    """Which innovation series count, worked out from the series' lengths and ages."""

    estimators: list[_Estimator]
    shortest: int
    used: int
    #: Every series was full: the plan holds for as long as they all keep reporting.
    settled: bool


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
        self._innovation_keys = SelectedKeys(self._is_innovation)
        self._feature_keys = SelectedKeys(self._is_feature)
        self._plan: _Plan | None = None
        #: Whether the features judged the last beat (their windows then keep sums).
        self._features_judged = True
        #: Innovation series pushed this beat.
        self._reported = 0

    def _is_innovation(self, key: str) -> bool:
        """An ``<estimator>.innovation*`` or ``.nis*`` key, never this core's own."""
        estimator, _, field = key.partition(".")
        # Never our own output: that would feed back on itself.
        return estimator != self.name and field.startswith(("nis", "innovation"))

    def _is_feature(self, key: str) -> bool:
        return not key.startswith(self.config.ignore_prefixes)

    def _push_innovations(self, estimates: dict[str, float]) -> None:
        size, beats, all_series = self.config.window, self.beats, self.series
        reported = 0
        for key in self._innovation_keys(estimates):
            value = estimates[key]
            if not isfinite(value):
                continue
            series = all_series.get(key)
            if series is None:
                estimator, _, field = key.partition(".")
                series = all_series[key] = _Series(estimator, field.startswith("nis"), size)
                self._plan = None
            if value > MAX_VALUE:
                value = MAX_VALUE
            elif value < -MAX_VALUE:
                value = -MAX_VALUE
            series.last = beats
            reported += 1
            # Window.push, inlined: this runs for every series every beat.
            values = series.values
            if not series.summed:
                values.append(value)
                continue
            if len(values) == size:
                old = values[0]
                series.total -= old
                series.squares -= old * old
            values.append(value)
            series.total += value
            series.squares += value * value
            series.pushes += 1
            if series.pushes == size:
                series.readd()
        self._reported = reported

    def _make_plan(self) -> _Plan:
        """Group the live series by estimator; drop those not reported for ``window`` beats."""
        cfg = self.config
        beats, size, warmup = self.beats, cfg.window, cfg.warmup
        groups: dict[str, _Estimator] = {}
        shortest, used, settled = size, 0, True
        stale: list[str] = []
        for key, series in self.series.items():
            if beats - series.last >= size:
                stale.append(key)
                continue
            group = groups.get(series.estimator)
            if group is None:
                group = groups[series.estimator] = _Estimator()
            if not series.is_nis:
                group.dimension += 1
            n = len(series.values)
            settled = settled and n == size
            if n < warmup:
                continue
            (group.nis if series.is_nis else group.innovations).append(series)
            shortest = min(shortest, n)
            used += 1
        for key in stale:
            del self.series[key]
        for series in self.series.values():
            group = groups[series.estimator]
            if group.nis and not series.is_nis:  # the NIS judges: no one reads these sums
                series.summed = False
        return _Plan(list(groups.values()), shortest, used, settled)

    def _innovations(self) -> tuple[float, int, int]:
        """(volatility, shortest window, series) over the live estimators; 0 series: none."""
        plan = self._plan
        # Full windows stay full: while every series reports, only their values change.
        if plan is None or not plan.settled or self._reported != len(self.series):
            plan = self._plan = self._make_plan()
        total, estimators = 0.0, 0
        for estimator in plan.estimators:
            volatility = estimator.volatility()
            if volatility is not None:
                total += volatility
                estimators += 1
        if not estimators:
            return 0.0, 0, 0
        return total / estimators, plan.shortest, plan.used

    def _push_features(self, features: dict[str, float]) -> None:
        cfg = self.config
        size, beats, all_features = cfg.window, self.beats, self.features
        keep = 1.0 - cfg.scale_decay
        for key in self._feature_keys(features):
            value = features[key]
            if not isfinite(value):
                continue
            feature = all_features.get(key)
            # New, or back after ``window`` beats away (not yet dropped: see handle).
            if feature is None or beats - feature.last > size:
                feature = all_features[key] = _Feature(size, summed=self._features_judged)
            scale, kept = abs(value), keep * feature.scale
            if kept > scale:
                scale = kept
            feature.scale = scale
            previous = feature.previous
            feature.previous = value
            feature.last = beats
            if previous is None:
                continue
            # Divide first: x − previous itself may overflow for huge values.
            value = value / scale - previous / scale if scale > 0 else 0.0
            # Window.push, inlined: this runs for every feature every beat.
            values = feature.values
            if not feature.summed:
                values.append(value)
                continue
            if len(values) == size:
                old = values[0]
                feature.total -= old
                feature.squares -= old * old
            values.append(value)
            feature.total += value
            feature.squares += value * value
            feature.pushes += 1
            if feature.pushes == size:
                feature.readd()

    def _drop_stale_features(self) -> None:
        """Forget the features not reported for ``window`` beats."""
        size, beats = self.config.window, self.beats
        stale = [key for key, f in self.features.items() if beats - f.last >= size]
        for key in stale:
            del self.features[key]

    def _features(self) -> tuple[float, int, int]:
        """(median volatility, shortest window, series) over the live features."""
        self._drop_stale_features()
        warmup, shortest = self.config.warmup, self.config.window
        volatilities: list[float] = []
        for feature in self.features.values():
            n = len(feature.values)
            if n >= warmup:
                volatilities.append(feature.variance())
                shortest = min(shortest, n)
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
        # Both kinds of window take every beat's values, whichever one is judged.
        self._push_innovations(pulse.context.estimates)
        self._push_features(pulse.features)
        volatility, samples, series = self._innovations()
        from_innovations = series > 0
        if from_innovations:
            stability = 1.0 / (1.0 + cfg.innovation_sensitivity * volatility)
            if self._features_judged:  # no sums for windows nobody reads
                self._features_judged = False
                for feature in self.features.values():
                    feature.summed = False
            # The features are not judged; forget the gone ones now and then all the same.
            if self.beats % cfg.window == 0:
                self._drop_stale_features()
        else:
            self._features_judged = True
            volatility, samples, series = self._features()
            stability = 1.0 / (1.0 + cfg.sensitivity * volatility) if series else 1.0
        scale = stability if stability > cfg.min_gain_scale else cfg.min_gain_scale
        return CoreReply(
            core="B",
            score=stability,
            details={
                "volatility": volatility,
                "samples": float(samples),
                "series": float(series),
                "from_innovations": 1.0 if from_innovations else 0.0,
                "kp": cfg.kp * scale,
                "ki": cfg.ki * scale,
                "kd": cfg.kd * scale,
            },
        )
