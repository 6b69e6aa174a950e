"""correlation: rolling Pearson correlations among plant signals (SPEC 3).

Over the last ``window`` beats in which every signal was measured, the
Pearson correlation of each pair is reported as ``r.<a>~<b>``, and the
pairs with |r| ≥ ``threshold`` are counted (``pairs_above``) and named in
``vectors["above"]`` as their indices into the signal list.

The window is a :class:`~venom.plugins.estimators.comoments.SlidingCoMoments`
(running sums, O(k²) a beat); :func:`pearson` is the whole-window numpy
computation it is tested against.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, ClassVar

import msgspec
import numpy as np
from msgspec import Meta
from numpy.typing import NDArray

from venom.plugins.estimators.comoments import SlidingCoMoments
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import ConfigError, EstimateReply, Pulse, Reply, Role


class CorrelationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    signals: tuple[str, ...] = (
        "plant.jitter",
        "plant.coherence",
        "plant.temperature",
        "plant.syndrome",
        "stability.stability",
    )
    window: Annotated[int, Meta(ge=3)] = 100
    threshold: Annotated[float, Meta(gt=0, le=1)] = 0.8


def pearson(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Correlation matrix of the columns of ``rows``; 0 where a column is constant."""
    centred = rows - rows.mean(axis=0)
    norms = np.sqrt((centred * centred).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (centred.T @ centred) / np.outer(norms, norms)
    return np.asarray(np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0), dtype=float)


class CorrelationEstimator(Plugin[CorrelationConfig]):
    """Pairwise Pearson correlations over a rolling window."""

    name: ClassVar[str] = "correlation"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[CorrelationConfig]] = CorrelationConfig
    description: ClassVar[str] = "rolling Pearson correlations; pairs above a threshold"

    def __init__(
        self, config: CorrelationConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        signals = self.config.signals
        self.window = SlidingCoMoments(len(signals), self.config.window)
        self.pairs = list(itertools.combinations(range(len(signals)), 2))
        self._keys = [f"r.{signals[i]}~{signals[j]}" for i, j in self.pairs]

    @classmethod
    def check(cls, config: CorrelationConfig) -> None:
        """At least two signals."""
        if len(config.signals) < 2:
            raise ConfigError(
                f"correlation needs at least two signals, got {len(config.signals)}",
                key="signals",
            )

    def _row(self, pulse: Pulse) -> list[float] | None:
        """The signals from the features, else the context's estimates; None unless all finite."""
        signals = self.config.signals
        row = list(map(pulse.features.get, signals))
        if None in row:
            estimates = pulse.context.estimates
            row = [estimates.get(s) if v is None else v for s, v in zip(signals, row, strict=True)]
            if None in row:
                return None
        if not all(map(math.isfinite, row)):  # type: ignore[arg-type]
            return None
        return row  # type: ignore[return-value]

    async def handle(self, pulse: Pulse) -> Reply:
        row = self._row(pulse)
        if row is not None:
            self.window.push(row)
        values: dict[str, float] = {"samples": float(len(self.window))}
        above: list[float] = []
        if len(self.window) >= 3:
            threshold = self.config.threshold
            rs = self.window.correlations()
            values.update(zip(self._keys, rs, strict=True))
            if max(map(abs, rs)) >= threshold:  # rarely: the pair loop only then
                for (i, j), rij in zip(self.pairs, rs, strict=True):
                    if abs(rij) >= threshold:
                        above += [float(i), float(j)]
        values["pairs_above"] = len(above) / 2
        return EstimateReply(estimator=self.name, values=values, vectors={"above": above})
