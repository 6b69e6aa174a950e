"""A linear Kalman filter and its innovation-adaptive variant (numpy, no plugin code).

    x' = A x + w,  w ~ N(0, Q)          y = C x + v,  v ~ N(0, R)

:class:`KalmanFilter` is the textbook predict/update with the Joseph form of
the covariance update (stays symmetric positive semi-definite).
:class:`AdaptiveKalmanFilter` re-estimates R from a window of innovations
(covariance matching: R ≈ mean(ν νᵀ) − C P⁻ Cᵀ), blends it in with a
forgetting factor and clips it to bounds, so a changed measurement noise
is followed without letting one outlier take over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class Update:
    """What one measurement update found."""

    innovation: Matrix  # ν = y − C x⁻
    s: Matrix  # innovation covariance C P⁻ Cᵀ + R
    nis: float  # νᵀ S⁻¹ ν (chi-square with dim(y) degrees of freedom when consistent)


class KalmanFilter:
    """Linear Kalman filter over an n-state, m-measurement model."""

    def __init__(self, a: Matrix, c: Matrix, q: Matrix, r: Matrix, x0: Matrix, p0: Matrix) -> None:
        self.a = np.asarray(a, dtype=float)
        self.c = np.asarray(c, dtype=float)
        self.q = np.asarray(q, dtype=float)
        self.r = np.asarray(r, dtype=float)
        self.x = np.asarray(x0, dtype=float).reshape(-1)
        self.p = np.asarray(p0, dtype=float)
        n, m = self.a.shape[0], self.c.shape[0]
        if (
            self.a.shape != (n, n)
            or self.c.shape != (m, n)
            or self.q.shape != (n, n)
            or self.r.shape != (m, m)
            or self.x.shape != (n,)
            or self.p.shape != (n, n)
        ):
            raise ValueError(
                f"inconsistent shapes: A {self.a.shape}, C {self.c.shape}, "
                f"Q {self.q.shape}, R {self.r.shape}, x0 {self.x.shape}, "
                f"P0 {self.p.shape}"
            )
        self._eye = np.eye(n)

    def predict(self) -> None:
        self.x = self.a @ self.x
        self.p = self.a @ self.p @ self.a.T + self.q

    def update(self, y: Matrix) -> Update:
        y = np.asarray(y, dtype=float).reshape(-1)
        nu = y - self.c @ self.x
        s = self.c @ self.p @ self.c.T + self.r
        k = np.linalg.solve(s.T, (self.p @ self.c.T).T).T  # K = P Cᵀ S⁻¹
        self.x = self.x + k @ nu
        ikc = self._eye - k @ self.c
        self.p = ikc @ self.p @ ikc.T + k @ self.r @ k.T
        nis = float(nu @ np.linalg.solve(s, nu))
        return Update(nu, s, nis)

    def step(self, y: Matrix | None) -> Update | None:
        """Predict, then update with ``y`` when there is a measurement."""
        self.predict()
        return None if y is None else self.update(y)


class AdaptiveKalmanFilter(KalmanFilter):
    """Estimates R from the last ``window`` innovations (bounded, forgetting)."""

    def __init__(
        self,
        a: Matrix,
        c: Matrix,
        q: Matrix,
        r: Matrix,
        x0: Matrix,
        p0: Matrix,
        *,
        window: int = 30,
        forgetting: float = 0.95,
        r_min: float = 1e-6,
        r_max: float = 1e3,
        threshold: float = 0.05,
    ) -> None:
        super().__init__(a, c, q, r, x0, p0)
        if not 0 < forgetting < 1:
            raise ValueError(f"forgetting factor must be in (0, 1), got {forgetting}")
        self.window = window
        self.forgetting = forgetting
        self.r_min, self.r_max = r_min, r_max
        self.threshold = threshold
        # The window as running sums of ν νᵀ and C P Cᵀ: O(1) per update.
        self._window: deque[tuple[Matrix, Matrix]] = deque()
        m = self.c.shape[0]
        self._sum_nn = np.zeros((m, m))
        self._sum_cpc = np.zeros((m, m))

    def update(self, y: Matrix) -> Update:
        prior_cpc = self.c @ self.p @ self.c.T
        result = super().update(y)
        nn = np.outer(result.innovation, result.innovation)
        self._window.append((nn, prior_cpc))
        self._sum_nn += nn
        self._sum_cpc += prior_cpc
        if len(self._window) > self.window:
            old_nn, old_cpc = self._window.popleft()
            self._sum_nn -= old_nn
            self._sum_cpc -= old_cpc
        self.adapted = False
        if len(self._window) == self.window:
            sample = (self._sum_nn - self._sum_cpc) / self.window
            # Keep R diagonal and inside bounds; blend gently.
            target = np.diag(np.clip(np.diag(sample), self.r_min, self.r_max))
            new_r = self.forgetting * self.r + (1 - self.forgetting) * target
            change = np.max(np.abs(np.diag(new_r) - np.diag(self.r)) / np.diag(self.r))
            self.adapted = bool(change > self.threshold * (1 - self.forgetting))
            self.r = new_r
        return result

    adapted: bool = False
