"""Small online statistics the cores share: a rolling window, an EWMA, key selection.

Plain floats, no per-beat allocation beyond the deque slot: these run every
beat in every core.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from functools import cache
from itertools import repeat
from operator import mul, sub


def finite(value: float) -> bool:
    """True for a real number (not NaN, not ±inf)."""
    return isinstance(value, int | float) and math.isfinite(value)


def clamp01(value: float) -> float:
    """``min(1.0, max(0.0, value))`` (NaN: 0.0), without the cost of those two calls."""
    value = value if value > 0.0 else 0.0
    return value if value < 1.0 else 1.0


@cache
def centred(n: int) -> tuple[list[float], float]:
    """(i − x̄ for i < n, Σ (i − x̄)²): the abscissae of a least-squares slope over n points."""
    x_mean = (n - 1) / 2
    return [i - x_mean for i in range(n)], sum((i - x_mean) ** 2 for i in range(n))


class Rolling:
    """Mean and variance over the last ``size`` values."""

    __slots__ = ("values",)

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)

    def push(self, value: float) -> None:
        self.values.append(value)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def full(self) -> bool:
        return len(self.values) == self.values.maxlen

    def mean(self) -> float:
        return sum(self.values) / len(self.values) if self.values else 0.0

    def variance(self) -> float:
        """Sample variance (0 with fewer than two values)."""
        n = len(self.values)
        if n < 2:
            return 0.0
        m = self.mean()
        return sum((v - m) ** 2 for v in self.values) / (n - 1)

    def slope(self) -> float:
        """Least-squares slope per sample (0 with fewer than two values)."""
        values = self.values
        n = len(values)
        if n < 2:
            return 0.0
        xs, den = centred(n)
        y_mean = sum(values) / n
        # Σ (i − x̄)(y − ȳ) in index order, as a generator would sum it, at C speed.
        num: float = sum(map(mul, xs, map(sub, values, repeat(y_mean, n))))
        return num / den


class Ewma:
    """Exponentially weighted mean and variance (West's incremental form)."""

    __slots__ = ("alpha", "count", "mean", "var")

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean = 0.0
        self.var = 0.0
        self.count = 0

    def z(self, value: float, floor: float) -> float:
        """z-score of ``value`` against the baseline (std floored at ``floor``)."""
        std = max(math.sqrt(self.var), floor)
        return (value - self.mean) / std

    def update(self, value: float) -> None:
        if self.count == 0:
            self.mean = value
            self.var = 0.0
        else:
            diff = value - self.mean
            incr = self.alpha * diff
            self.mean += incr
            self.var = (1 - self.alpha) * (self.var + diff * incr)
        self.count += 1


class SelectedKeys:
    """The keys of a beat's mapping that pass ``wanted``, in the mapping's order.

    Consecutive beats nearly always carry the same keys in the same order
    (the same sensors and estimators answer), so a beat costs one comparison
    of key lists; the keys are sorted out again only when they change, and
    each key's answer is remembered (up to ``MEMO`` keys).
    """

    MEMO = 4096

    __slots__ = ("_keys", "_memo", "_selected", "wanted")

    def __init__(self, wanted: Callable[[str], bool]) -> None:
        self.wanted = wanted
        self._keys: list[str] = []
        self._selected: list[str] = []
        self._memo: dict[str, bool] = {}

    def __call__(self, values: Mapping[str, object]) -> list[str]:
        keys = list(values)
        if keys != self._keys:
            self._keys = keys
            self._selected = [key for key in keys if self._wanted(key)]
        return self._selected

    def _wanted(self, key: str) -> bool:
        memo = self._memo
        answer = memo.get(key)
        if answer is None:
            if len(memo) >= self.MEMO:  # keys that keep changing: start over
                memo.clear()
            answer = memo[key] = self.wanted(key)
        return answer
