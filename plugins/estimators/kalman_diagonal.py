"""The Kalman filters of :mod:`~venom.plugins.estimators.kalman_filter` for diagonal models.

When A, C, Q, R and P0 are all diagonal (C square), the covariance stays
diagonal for ever and the n-state filter is n independent scalar filters.
That is the default model, and it runs on every beat: in plain floats it is
about twenty multiplications and divisions per state, where numpy spends
microseconds per call on each 3×3 product, solve and ``diag``. The
arithmetic follows the matrix code operation for operation (the same
products in the same order, ``(a·p)·a + q``, the Joseph form), so it agrees
with the numpy filter to the last bit or two (tests/unit/plugins/test_kalman.py
checks 1e-12 on random models). The lengths are checked once, at
construction, so the per-beat loops zip without ``strict``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


def diagonal(matrix: Sequence[Sequence[float]]) -> list[float] | None:
    """The diagonal of a square matrix with zeros elsewhere; None for any other."""
    n = len(matrix)
    if any(len(row) != n for row in matrix):
        return None
    for i, row in enumerate(matrix):
        if any(v != 0.0 for j, v in enumerate(row) if j != i):
            return None
    return [float(row[i]) for i, row in enumerate(matrix)]


class DiagonalKalmanFilter:
    """Kalman filter over a diagonal model: one scalar filter per state.

    :meth:`step` fuses predict and update into one pass over the states and
    builds new lists each time (a reply not yet encoded may hold the old ones).
    """

    __slots__ = ("a", "adapted", "c", "p", "q", "r", "x")

    def __init__(
        self, a: list[float], c: list[float], q: list[float], r: list[float], p0: float
    ) -> None:
        if not len(a) == len(c) == len(q) == len(r):
            raise ValueError(f"diagonals of different lengths: {len(a)}/{len(c)}/{len(q)}/{len(r)}")
        self.a, self.c, self.q, self.r = a, c, q, r
        self.x = [0.0] * len(a)
        self.p = [float(p0)] * len(a)
        self.adapted = False

    def predict(self) -> None:
        self.x = [a * x for a, x in zip(self.a, self.x, strict=False)]
        self.p = [a * p * a + q for a, p, q in zip(self.a, self.p, self.q, strict=False)]

    def step(self, y: Sequence[float] | None) -> tuple[list[float], float] | None:
        """Predict, then update with ``y`` when there is one; (innovation ν, NIS νᵀ S⁻¹ ν)."""
        if y is None:
            self.predict()
            return None
        xs: list[float] = []
        ps: list[float] = []
        nus: list[float] = []
        nis = 0.0
        for a, c, q, r, x, p, yi in zip(
            self.a, self.c, self.q, self.r, self.x, self.p, y, strict=False
        ):
            x = a * x
            p = a * p * a + q
            nu = yi - c * x
            s = c * p * c + r
            k = p * c / s
            ikc = 1.0 - k * c
            xs.append(x + k * nu)
            ps.append(ikc * p * ikc + k * r * k)
            nus.append(nu)
            nis += nu * (nu / s)
        self.x, self.p = xs, ps
        return nus, nis


class DiagonalAdaptiveKalmanFilter(DiagonalKalmanFilter):
    """:class:`~venom.plugins.estimators.kalman_filter.AdaptiveKalmanFilter`, diagonal.

    Only the diagonals of the window's sums of ν νᵀ and C P⁻ Cᵀ enter the
    estimate of R, so only they are kept, added to and taken out of the
    running sums as the matrix version does; R stays diagonal. The whole
    beat (predict, update, window, new R) is one pass over the states.
    """

    __slots__ = (
        "_sum_cpc",
        "_sum_nn",
        "_window",
        "_zeros",
        "forgetting",
        "r_max",
        "r_min",
        "threshold",
        "window",
    )

    def __init__(
        self,
        a: list[float],
        c: list[float],
        q: list[float],
        r: list[float],
        p0: float,
        *,
        window: int = 30,
        forgetting: float = 0.95,
        r_min: float = 1e-6,
        r_max: float = 1e3,
        threshold: float = 0.05,
    ) -> None:
        super().__init__(a, c, q, r, p0)
        if not 0 < forgetting < 1:
            raise ValueError(f"forgetting factor must be in (0, 1), got {forgetting}")
        self.window = window
        self.forgetting = forgetting
        self.r_min, self.r_max = r_min, r_max
        self.threshold = threshold
        self._window: deque[tuple[list[float], list[float]]] = deque()
        self._zeros = [0.0] * len(a)
        self._sum_nn = self._zeros
        self._sum_cpc = self._zeros

    def step(self, y: Sequence[float] | None) -> tuple[list[float], float] | None:
        if y is None:
            self.predict()
            return None
        window = self._window
        full = len(window) == self.window  # the oldest pair leaves this beat
        adapt = len(window) >= self.window - 1  # the window is full after this beat
        old_nn, old_cpc = window[0] if full else (self._zeros, self._zeros)
        f, g, lo, hi, size = (
            self.forgetting,
            1 - self.forgetting,
            self.r_min,
            self.r_max,
            self.window,
        )
        xs: list[float] = []
        ps: list[float] = []
        nus: list[float] = []
        nns: list[float] = []
        cpcs: list[float] = []
        sums_nn: list[float] = []
        sums_cpc: list[float] = []
        rs: list[float] = []
        nis = change = 0.0
        for a, c, q, r, x, p, yi, snn, scpc, onn, ocpc in zip(
            self.a, self.c, self.q, self.r, self.x, self.p, y,
            self._sum_nn, self._sum_cpc, old_nn, old_cpc, strict=False,
        ):  # fmt: skip
            x = a * x
            p = a * p * a + q
            cpc = c * p * c  # C P⁻ Cᵀ, before the update
            nu = yi - c * x
            s = cpc + r
            k = p * c / s
            ikc = 1.0 - k * c
            xs.append(x + k * nu)
            ps.append(ikc * p * ikc + k * r * k)
            nus.append(nu)
            nis += nu * (nu / s)
            nn = nu * nu
            nns.append(nn)
            cpcs.append(cpc)
            snn = snn + nn - onn  # minus 0.0 until the window is full: exact
            scpc = scpc + cpc - ocpc
            sums_nn.append(snn)
            sums_cpc.append(scpc)
            if adapt:  # R blends towards the clipped sample; the change is relative
                new = f * r + g * min(max((snn - scpc) / size, lo), hi)
                change = max(change, abs(new - r) / r)
                rs.append(new)
        self.x, self.p = xs, ps
        window.append((nns, cpcs))
        if full:
            window.popleft()
        self._sum_nn, self._sum_cpc = sums_nn, sums_cpc
        self.adapted = adapt and change > self.threshold * g
        if adapt:
            self.r = rs
        return nus, nis
