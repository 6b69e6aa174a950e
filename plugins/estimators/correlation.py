"""correlation: rolling Pearson correlations among plant signals (SPEC 3).

Over the last ``window`` beats in which every signal was measured, the
Pearson correlation of each pair is reported as ``r.<a>~<b>``, and the
pairs with |r| ≥ ``threshold`` are counted (``pairs_above``) and named in
``vectors["above"]`` as their indices into the signal list.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Annotated, ClassVar

import msgspec
import numpy as np
from msgspec import Meta
from numpy.typing import NDArray

from venom.plugins.sdk import Plugin, PluginContext, lookup
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
        self.rows: deque[list[float]] = deque(maxlen=self.config.window)
        self.pairs = list(itertools.combinations(range(len(self.config.signals)), 2))

    @classmethod
    def check(cls, config: CorrelationConfig) -> None:
        """At least two signals."""
        if len(config.signals) < 2:
            raise ConfigError(
                f"correlation needs at least two signals, got {len(config.signals)}",
                key="signals",
            )

    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        row = [lookup(pulse, s) for s in c.signals]
        if None not in row:
            self.rows.append(row)  # type: ignore[arg-type]
        values: dict[str, float] = {"samples": float(len(self.rows))}
        above: list[float] = []
        if len(self.rows) >= 3:
            r = pearson(np.array(self.rows, dtype=float))
            for i, j in self.pairs:
                rij = float(r[i, j])
                values[f"r.{c.signals[i]}~{c.signals[j]}"] = rij
                if abs(rij) >= c.threshold:
                    above += [float(i), float(j)]
        values["pairs_above"] = len(above) / 2
        return EstimateReply(estimator=self.name, values=values, vectors={"above": above})
