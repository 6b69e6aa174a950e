"""Pearson correlations of k signals over a rolling window, in one matmul a beat.

The correlation estimator used to rebuild a (window × k) array from a deque
of lists and run numpy's mean, matmul, outer, ``errstate`` and
``nan_to_num`` on it every beat: about 150 µs for 100 × 5, most of it per-call
overhead. Here the window is a preallocated ring buffer of d = row − K (K
the anchor) with a column of ones after the k signals. A beat writes its d
in place and takes one product G = DᵀD of the (n × k+1) buffer: G holds
Σdᵢdⱼ, Σdᵢ (the ones column) and n, so
Cᵢⱼ = Σdᵢdⱼ − ΣdᵢΣdⱼ/n and rᵢⱼ = Cᵢⱼ/(√Cᵢᵢ·√Cⱼⱼ) follow in plain floats.

Everything is summed afresh each beat, so nothing drifts. The anchor keeps
the sums from cancelling: it is a value of the window near each signal's
mean, moved whenever the mean's offset from it makes up more than
:data:`OFFSET` of Σd² (the error then stays near 1e-14); the buffer is then
rebuilt from the raw rows, which a deque keeps. A signal constant
over the window has d = 0 exactly, Cᵢᵢ = 0 and correlations 0, as numpy's
0/0 → NaN → 0 gives for such a column.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from itertools import combinations
from operator import sub

import numpy as np

#: Move the anchor when (Σd)²/n, the mean's offset from it, exceeds this share of Σd².
OFFSET = 15 / 16


class SlidingCoMoments:
    """The last ``size`` rows of ``columns`` values and their pairwise correlations."""

    __slots__ = (
        "_anchor",
        "_buffer",
        "_k",
        "_next",
        "_pair_index",
        "_raw",
        "_rows",
        "pairs",
        "size",
    )

    def __init__(self, columns: int, size: int) -> None:
        if columns < 2 or size < 1:
            raise ValueError(f"need two columns and a window of one, got {columns} and {size}")
        self.size = size
        self.pairs = list(combinations(range(columns), 2))
        self._k = columns
        #: (flat index of Σdᵢdⱼ in G, i, j) per pair.
        self._pair_index = [(i * (columns + 1) + j, i, j) for i, j in self.pairs]
        self._buffer = np.ones((size, columns + 1))  # rows in ring order, then a 1
        self._anchor = [0.0] * columns  # K
        self._raw: deque[Sequence[float]] = deque(maxlen=size)  # the rows as pushed
        self._rows = 0  # rows in the window
        self._next = 0  # where the next row goes

    def __len__(self) -> int:
        return self._rows

    def push(self, row: Sequence[float]) -> None:
        if not self._rows:
            self._anchor = list(row)
        self._raw.append(row)
        self._buffer[self._next, : self._k] = list(map(sub, row, self._anchor))
        self._next = (self._next + 1) % self.size
        self._rows = len(self._raw)

    def _sums(self) -> list[float]:
        """G = DᵀD of the window, flat: Σdᵢdⱼ at i(k+1)+j, Σdᵢ at k(k+1)+i, n last."""
        d = self._buffer if self._rows == self.size else self._buffer[: self._rows]
        return (d.T @ d).ravel().tolist()

    def _move_anchor(self) -> None:
        """Each signal's anchor to its window value nearest the window's mean."""
        raw = np.array(self._raw, dtype=float)  # oldest first
        nearest = np.abs(raw - raw.mean(axis=0)).argmin(axis=0)
        anchor = raw[nearest, np.arange(self._k)]
        self._anchor = anchor.tolist()
        self._buffer[: self._rows, : self._k] = raw - anchor
        self._next = self._rows % self.size

    def correlations(self) -> list[float]:
        """rᵢⱼ for the pairs i < j (``itertools.combinations`` order); 0 for a constant signal."""
        k = self._k
        width = k + 1
        for _ in range(2):
            g = self._sums()
            sums = g[k * width : k * width + k]
            means = [x / g[-1] for x in sums]
            squares = g[: k * width : width + 1]  # the diagonal: Σdᵢ²
            offsets = [x * m for x, m in zip(sums, means, strict=False)]  # (Σdᵢ)²/n
            if not any(OFFSET * q < o for q, o in zip(squares, offsets, strict=False)):
                break
            self._move_anchor()
        # 1/√Cᵢᵢ, and 0 for a constant signal: its correlations come out 0.
        inv = [
            1.0 / math.sqrt(q - o) if q > o else 0.0 for q, o in zip(squares, offsets, strict=False)
        ]
        r = [(g[ij] - sums[i] * means[j]) * inv[i] * inv[j] for ij, i, j in self._pair_index]
        if not all(map(math.isfinite, r)):  # a tiny Cᵢᵢ: numpy's inf → 0
            r = [x if math.isfinite(x) else 0.0 for x in r]
        return r
