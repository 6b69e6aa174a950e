"""The kalman and adaptive-kalman estimators (SPEC 3) as plugins.

Each pulse: predict, then update with the plant's 3-state measurement taken
from the pulse's features (``plant.y0..y2`` by default); a beat without the
measurement only predicts. Replies carry the state estimate, the covariance
diagonal, the innovation and the NIS — the balance core reads
``<name>.innovation_*`` and ``<name>.nis`` from the next pulse's context.
The math lives in :mod:`venom.plugins.estimators.kalman_filter`; numpy on
3×3 matrices takes microseconds, so it runs on the event loop.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import msgspec
import numpy as np
from msgspec import Meta

from venom.plugins.estimators.kalman_filter import AdaptiveKalmanFilter, KalmanFilter, Matrix
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import ConfigError, EstimateReply, Pulse, Reply, Role

Square3 = list[list[float]]


def _eye(scale: float) -> Square3:
    return [[scale if i == j else 0.0 for j in range(3)] for i in range(3)]


class KalmanConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Model and measurement of the filter (defaults: a stable 3-state plant)."""

    a: Square3 = msgspec.field(default_factory=lambda: _eye(0.95))
    c: Square3 = msgspec.field(default_factory=lambda: _eye(1.0))
    q: Square3 = msgspec.field(default_factory=lambda: _eye(1e-3))
    r: Square3 = msgspec.field(default_factory=lambda: _eye(1e-2))
    p0: Annotated[float, Meta(gt=0)] = 1.0
    features: tuple[str, ...] = ("plant.y0", "plant.y1", "plant.y2")
    # adaptive-kalman only
    window: Annotated[int, Meta(ge=2)] = 30
    forgetting: Annotated[float, Meta(gt=0, lt=1)] = 0.95
    r_min: Annotated[float, Meta(gt=0)] = 1e-6
    r_max: Annotated[float, Meta(gt=0)] = 1e3


class KalmanEstimator(Plugin[KalmanConfig]):
    """Linear Kalman filter over the plant's measurement."""

    name: ClassVar[str] = "kalman"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[KalmanConfig]] = KalmanConfig
    description: ClassVar[str] = "Kalman filter: state, covariance, innovation, NIS"

    def __init__(
        self, config: KalmanConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        self.filter = self._make_filter()

    @classmethod
    def check(cls, config: KalmanConfig) -> None:
        """a and q are n x n, c is m x n, r is m x m, one feature per row of c."""
        n, m = len(config.a), len(config.c)
        for key, size in (("a", n), ("c", m)):
            if size == 0:
                raise ConfigError("must not be empty", key=key)
        for key, rows, cols in (("a", n, n), ("c", m, n), ("q", n, n), ("r", m, m)):
            matrix: Square3 = getattr(config, key)
            if len(matrix) != rows or any(len(row) != cols for row in matrix):
                shape = "/".join(str(len(row)) for row in matrix) or "0"
                raise ConfigError(
                    f"must be {rows} x {cols} (a is {n} x {n}, c has {m} rows), "
                    f"got {len(matrix)} row(s) of {shape}",
                    key=key,
                )
        if len(config.features) != m:
            raise ConfigError(
                f"{len(config.features)} feature(s) for the {m} rows of c", key="features"
            )

    def _model(self) -> tuple[Matrix, ...]:
        """(A, C, Q, R, x0, P0) from the config."""
        c = self.config
        n = len(c.a)
        return (
            np.array(c.a),
            np.array(c.c),
            np.array(c.q),
            np.array(c.r),
            np.zeros(n),
            np.eye(n) * c.p0,
        )

    def _make_filter(self) -> KalmanFilter:
        return KalmanFilter(*self._model())

    def _measurement(self, pulse: Pulse) -> list[float] | None:
        values = [pulse.features.get(f) for f in self.config.features]
        if any(v is None or not math.isfinite(v) for v in values):
            return None
        return [float(v) for v in values]  # type: ignore[arg-type]

    async def handle(self, pulse: Pulse) -> Reply:
        y = self._measurement(pulse)
        result = self.filter.step(None if y is None else np.array(y))
        f = self.filter
        values = {f"x{i}": float(v) for i, v in enumerate(f.x)}
        values.update({f"p{i}": float(v) for i, v in enumerate(np.diag(f.p))})
        values["measured"] = 0.0 if result is None else 1.0
        if result is not None:
            values.update({f"innovation_{i}": float(v) for i, v in enumerate(result.innovation)})
            values["nis"] = result.nis
        return EstimateReply(
            estimator=self.name,
            values=values,
            vectors={"state": f.x.tolist(), "cov_diag": np.diag(f.p).tolist()},
            adapted=bool(getattr(f, "adapted", False)),
        )


class AdaptiveKalmanEstimator(KalmanEstimator):
    """Kalman filter that follows a changing measurement noise R."""

    name: ClassVar[str] = "adaptive-kalman"
    description: ClassVar[str] = "innovation-adaptive Kalman filter (estimates R)"

    def _make_filter(self) -> KalmanFilter:
        c = self.config
        return AdaptiveKalmanFilter(
            *self._model(), window=c.window, forgetting=c.forgetting, r_min=c.r_min, r_max=c.r_max
        )

    async def handle(self, pulse: Pulse) -> Reply:
        reply = await super().handle(pulse)
        assert isinstance(reply, EstimateReply)
        r = np.diag(self.filter.r)
        values = dict(reply.values)
        values.update({f"r{i}": float(v) for i, v in enumerate(r)})
        return msgspec.structs.replace(reply, values=values)
