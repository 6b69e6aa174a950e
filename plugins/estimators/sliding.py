"""A rolling window whose mean, variance and trend slope cost O(1) per value.

:class:`~venom.plugins.cores.stats.Rolling` sums its whole window for each
statistic, which is 50 to 100 Python-level steps per call; the stability
estimator asks for three of them every beat. Here the window keeps running
sums instead, Σd, Σd² and Σi·d of d = value − anchor (i the position in the
window), updated as a value enters and the oldest leaves.

Running sums drift, and they cancel. Every addition and removal rounds, and
a large value that has left the window leaves its rounding error behind in
sums that may now be small; and once the values have moved away from the
anchor, Σd² − (Σd)²/n loses digits. So the sums are recomputed from the
window (two-pass accuracy, as :class:`Rolling` has) every ``4 × size``
values, and at once when the squares added and removed since the last
recomputation outweigh Σd² by more than :data:`DRIFT`, or when the mean's
offset from the anchor makes up more than :data:`OFFSET` of Σd². Either way
the error stays near 1e-14 of the variance. The anchor is the window's value
nearest its mean: d stays small, and a window of one repeated value has
d = 0 exactly, variance 0 and slope 0.
"""

from __future__ import annotations

from collections import deque

#: Recompute when Σd² added and removed since the last recomputation exceeds this × Σd².
DRIFT = 64.0
#: Recompute when (Σd)²/n, the mean's offset from the anchor, exceeds this share of Σd².
OFFSET = 15 / 16


class SlidingWindow:
    """The last ``size`` values; :meth:`mean`, :meth:`variance`, :meth:`slope` in O(1)."""

    __slots__ = ("_anchor", "_pushes", "_s1", "_s2", "_t", "_touched", "size", "values")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self.values: deque[float] = deque()
        self._anchor = 0.0
        self._s1 = self._s2 = self._t = self._touched = 0.0  # Σd, Σd², Σi·d, Σd² in and out
        self._pushes = 0

    def __len__(self) -> int:
        return len(self.values)

    def push(self, value: float) -> None:
        values = self.values
        n = len(values)
        if not n:
            self._anchor = value
        d = value - self._anchor
        dd = d * d
        if n == self.size:
            d0 = values.popleft() - self._anchor
            # Every remaining value moves down one position: Σi·d loses their Σd.
            self._t += (n - 1) * d - (self._s1 - d0)
            self._s1 += d - d0
            self._s2 += dd - d0 * d0
            self._touched += dd + d0 * d0
        else:
            self._t += n * d
            self._s1 += d
            self._s2 += dd
            self._touched += dd
        values.append(value)
        self._pushes += 1
        s1, s2 = self._s1, self._s2
        if (
            self._pushes >= 4 * self.size
            or self._touched > DRIFT * s2
            or s1 * s1 > OFFSET * len(values) * s2
        ):
            self._recompute()

    def _recompute(self) -> None:
        values = self.values
        mean = sum(values) / len(values)
        anchor = self._anchor = min(values, key=lambda v: abs(v - mean))
        ds = [v - anchor for v in values]
        self._s1 = sum(ds)
        self._s2 = self._touched = sum(d * d for d in ds)
        self._t = sum(i * d for i, d in enumerate(ds))
        self._pushes = 0

    def mean(self) -> float:
        n = len(self.values)
        return self._anchor + self._s1 / n if n else 0.0

    def variance(self) -> float:
        """Sample variance (0 with fewer than two values)."""
        n = len(self.values)
        if n < 2:
            return 0.0
        return max(0.0, (self._s2 - self._s1 * self._s1 / n) / (n - 1))

    def slope(self) -> float:
        """Least-squares slope per position (0 with fewer than two values)."""
        n = len(self.values)
        if n < 2:
            return 0.0
        # Σ(i − ī)(d − d̄) = Σi·d − ī·Σd; Σ(i − ī)² = n(n² − 1)/12, exact in floats.
        return (self._t - (n - 1) / 2 * self._s1) / (n * (n * n - 1) / 12)
