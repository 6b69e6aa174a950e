"""The kalman and adaptive-kalman estimators (SPEC 3) as plugins.

Each pulse: predict, then update with the plant's 3-state measurement taken
from the pulse's features (``plant.y0..y2`` by default); a beat without the
measurement only predicts. Replies carry the state estimate, the covariance
diagonal, the innovation and the NIS — the balance core reads
``<name>.innovation_*`` and ``<name>.nis`` from the next pulse's context.
The math lives in :mod:`venom.plugins.estimators.kalman_filter` (numpy, any
model) and :mod:`venom.plugins.estimators.kalman_diagonal` (plain floats, used
when the model is diagonal, as the default is: the numpy calls on 3×3
matrices cost ten times more than the arithmetic). The reply's keys are
built once, at start.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import msgspec
import numpy as np
from msgspec import Meta

from venom.plugins.estimators.kalman_diagonal import (
    DiagonalAdaptiveKalmanFilter,
    DiagonalKalmanFilter,
    diagonal,
)
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
    #: Whether replies carry R's diagonal (``r0``, …), which the adaptive filter estimates.
    reports_r: ClassVar[bool] = False

    def __init__(
        self, config: KalmanConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        c = self.config
        self.filter: KalmanFilter | DiagonalKalmanFilter = (
            self._make_filter() if self._diagonal() is None else self._make_diagonal_filter()
        )
        # The reply's keys, in the order the values are listed: with and without a measurement.
        n, m = len(c.a), len(c.c)
        state = [f"x{i}" for i in range(n)] + [f"p{i}" for i in range(n)] + ["measured"]
        measured = state + [f"innovation_{i}" for i in range(m)] + ["nis"]
        r = [f"r{i}" for i in range(m)] if self.reports_r else []
        self._keys = (tuple(state + r), tuple(measured + r))

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

    def _diagonal(self) -> tuple[list[float], ...] | None:
        """The diagonals of (A, C, Q, R) when all four are diagonal and C is square."""
        c = self.config
        diagonals = [diagonal(m) for m in (c.a, c.c, c.q, c.r)]
        if any(d is None for d in diagonals) or len(c.c) != len(c.a):
            return None
        return tuple(d for d in diagonals if d is not None)

    def _make_filter(self) -> KalmanFilter:
        return KalmanFilter(*self._model())

    def _make_diagonal_filter(self) -> DiagonalKalmanFilter:
        a, c, q, r = self._diagonal() or ()
        return DiagonalKalmanFilter(a, c, q, r, self.config.p0)

    def _measurement(self, pulse: Pulse) -> list[float] | None:
        values = list(map(pulse.features.get, self.config.features))
        if None in values or not all(map(math.isfinite, values)):  # type: ignore[arg-type]
            return None
        return values  # type: ignore[return-value]

    def _step(self, y: list[float] | None) -> tuple[list[float], list[float], list[float], float]:
        """Step the filter; (state, covariance diagonal, innovation, NIS), [] and 0 unmeasured."""
        f = self.filter
        if isinstance(f, DiagonalKalmanFilter):
            found = f.step(y)
            nu, nis = found if found is not None else ([], 0.0)
            return f.x, f.p, nu, nis
        result = f.step(None if y is None else np.array(y))
        nu, nis = ([], 0.0) if result is None else (result.innovation.tolist(), result.nis)
        return f.x.tolist(), np.diag(f.p).tolist(), nu, nis

    def _r_diagonal(self) -> list[float]:
        f = self.filter
        return list(f.r) if isinstance(f, DiagonalKalmanFilter) else np.diag(f.r).tolist()

    async def handle(self, pulse: Pulse) -> Reply:
        y = self._measurement(pulse)
        x, p, nu, nis = self._step(y)
        row = [*x, *p, 0.0] if y is None else [*x, *p, 1.0, *nu, nis]
        if self.reports_r:
            row += self._r_diagonal()
        return EstimateReply(
            estimator=self.name,
            values=dict(zip(self._keys[y is not None], row, strict=True)),
            vectors={"state": x, "cov_diag": p},
            adapted=bool(getattr(self.filter, "adapted", False)),
        )


class AdaptiveKalmanEstimator(KalmanEstimator):
    """Kalman filter that follows a changing measurement noise R."""

    name: ClassVar[str] = "adaptive-kalman"
    description: ClassVar[str] = "innovation-adaptive Kalman filter (estimates R)"
    reports_r: ClassVar[bool] = True

    def _make_filter(self) -> KalmanFilter:
        c = self.config
        return AdaptiveKalmanFilter(
            *self._model(), window=c.window, forgetting=c.forgetting, r_min=c.r_min, r_max=c.r_max
        )

    def _make_diagonal_filter(self) -> DiagonalKalmanFilter:
        c = self.config
        a, cc, q, r = self._diagonal() or ()
        return DiagonalAdaptiveKalmanFilter(
            a,
            cc,
            q,
            r,
            c.p0,
            window=c.window,
            forgetting=c.forgetting,
            r_min=c.r_min,
            r_max=c.r_max,
        )
