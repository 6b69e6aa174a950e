"""The drift-free pulse scheduler (SPEC 2.1).

Ticks fall at ``anchor + n·T`` on the monotonic clock, so sleep overshoot
never accumulates. A beat still running when its next tick comes makes that
tick *missed*: the scheduler skips to the first tick not yet past and counts
the skipped ones; ticks are never queued. A period change re-anchors at the
last tick. ``period == 0`` means back-to-back beats.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import anyio


class Tick:
    """When a beat may start: the due time, how late it actually started."""

    __slots__ = ("due", "index", "lateness", "skipped")

    def __init__(self, index: int, due: float, lateness: float, skipped: int) -> None:
        self.index = index
        self.due = due
        self.lateness = lateness
        self.skipped = skipped


class Scheduler:
    """Yields ticks at a fixed, changeable period without drift."""

    def __init__(self, period: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not math.isfinite(period) or period < 0:
            raise ValueError(f"period must be finite and >= 0, got {period!r}")
        self.clock = clock
        self.period = period
        self.anchor = clock()
        self.index = -1
        self.missed = 0

    def restart(self) -> None:
        """Anchor the grid at now (after start-up or a pause); keep the counts."""
        self.anchor = self.clock()
        self.index = -1

    def set_period(self, period: float) -> None:
        """Change the period from the last tick on (no drift, no burst)."""
        if not math.isfinite(period) or period < 0:
            raise ValueError(f"period must be finite and >= 0, got {period!r}")
        if period == self.period:
            return
        if self.index >= 0:
            self.anchor = self.anchor + self.index * self.period
            self.index = 0
        self.period = period

    def _due(self, index: int) -> float:
        return self.anchor + index * self.period

    def next_due(self) -> tuple[int, float, int]:
        """The next tick not yet past: (index, due time, ticks skipped to reach it)."""
        nxt = self.index + 1
        if self.period == 0 or nxt == 0:
            # Back-to-back, or the first tick after (re)start: no beat ran before it.
            return nxt, self.anchor if nxt == 0 and self.period else self.clock(), 0
        now = self.clock()
        due = self._due(nxt)
        skipped = 0
        if now > due:
            # The previous beat overran one or more ticks: skip them.
            behind = math.floor((now - due) / self.period) + 1
            nxt += behind
            skipped = behind
            due = self._due(nxt)
        return nxt, due, skipped

    async def wait(self, max_lateness: float = math.inf) -> Tick:
        """Sleep until the next tick and return it.

        A tick we wake up for more than ``max_lateness`` after it was due (the
        process was stalled) is missed too: a beat started that late would
        have no time left to gather, so we wait for the next one instead.
        """
        skipped_total = 0
        while True:
            index, due, skipped = self.next_due()
            skipped_total += skipped
            now = self.clock()
            if due > now:
                await anyio.sleep(due - now)
                now = self.clock()
            self.index = index
            late = max(0.0, now - due)
            if late <= max_lateness or self.period == 0 or index == 0:
                self.missed += skipped_total
                return Tick(index, due, late, skipped_total)
            skipped_total += 1
