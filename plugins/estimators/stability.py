"""stability: a stability score and the closed-loop matrix's spectrum (SPEC 3).

- **score**: the trend of the rolling variance of a signal. The variance over
  the last ``window`` beats is tracked over another ``window``; its relative
  growth g = slope · window / mean variance gives score = exp(−max(0, g)), so
  a steady or settling signal scores 1 and a spreading one falls towards 0.
- **spectrum** of the configured closed-loop matrix M (numpy): the spectral
  abscissa max Re λ (continuous time: stable when < 0) and the spectral
  radius max |λ| (discrete time: stable when < 1), and the stability margin
  for the configured kind.

The two windows are :class:`~venom.plugins.estimators.sliding.SlidingWindow`
(running sums, O(1) per beat) rather than the cores' ``Rolling``, which
sums the whole window for each statistic; the reply's constant part (the
spectrum and the margin) is computed once.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import msgspec
import numpy as np
from msgspec import Meta
from numpy.typing import NDArray

from venom.plugins.estimators.sliding import SlidingWindow
from venom.plugins.sdk import Plugin, PluginContext, lookup
from venom.schemas import ConfigError, EstimateReply, Pulse, Reply, Role


def spectral_abscissa(m: NDArray[np.float64]) -> float:
    """max Re(λ) over the eigenvalues of ``m``."""
    return float(np.max(np.linalg.eigvals(m).real))


def spectral_radius(m: NDArray[np.float64]) -> float:
    """max |λ| over the eigenvalues of ``m``."""
    return float(np.max(np.abs(np.linalg.eigvals(m))))


class StabilityConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    signal: str = "plant.y0"
    window: Annotated[int, Meta(ge=3)] = 50
    closed_loop: list[list[float]] = msgspec.field(
        default_factory=lambda: [[0.9, 0.05, 0.0], [0.0, 0.85, 0.05], [0.0, 0.0, 0.8]]
    )
    discrete: bool = True


class StabilityEstimator(Plugin[StabilityConfig]):
    """Variance-trend stability score plus spectral abscissa and radius."""

    name: ClassVar[str] = "stability"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[StabilityConfig]] = StabilityConfig
    description: ClassVar[str] = "stability score (variance trend) and spectral abscissa/radius"

    def __init__(
        self, config: StabilityConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        m = np.array(self.config.closed_loop, dtype=float)
        # The matrix is configuration: its spectrum is computed once.
        self.abscissa = spectral_abscissa(m)
        self.radius = spectral_radius(m)
        self.margin = (1.0 - self.radius) if self.config.discrete else -self.abscissa
        self.values = SlidingWindow(self.config.window)
        self.variances = SlidingWindow(self.config.window)

    @classmethod
    def check(cls, config: StabilityConfig) -> None:
        """``closed_loop`` is a square matrix."""
        m = config.closed_loop
        if not m or any(len(row) != len(m) for row in m):
            rows = "/".join(str(len(row)) for row in m) or "0"
            raise ConfigError(
                f"must be a square matrix, got {len(m)} row(s) of {rows}", key="closed_loop"
            )

    def score(self) -> float:
        if len(self.variances) < 3:
            return 1.0
        mean = self.variances.mean()
        if mean <= 0:
            return 1.0
        growth = self.variances.slope() * len(self.variances) / mean
        return math.exp(-max(0.0, growth))

    async def handle(self, pulse: Pulse) -> Reply:
        x = lookup(pulse, self.config.signal)
        if x is not None:
            self.values.push(x)
            if len(self.values) >= 3:
                self.variances.push(self.values.variance())
        return EstimateReply(
            estimator=self.name,
            values={
                "stability": self.score(),
                "abscissa": self.abscissa,
                "radius": self.radius,
                "margin": self.margin,
                "samples": float(len(self.values)),
            },
        )
