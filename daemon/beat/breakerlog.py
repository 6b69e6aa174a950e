"""Breaker changes, summarised: at most one log line per interval.

A plugin that keeps missing its deadline flaps: down after ``breaker_after``
misses, back with its next (late) reply, down again. One line per change is
a flood (hundreds a minute on a slow machine). :class:`BreakerLog` collects
the changes and says them at most once per ``interval`` seconds: the first
change at once, then what accumulated, in one line::

    breaker: down (missed 5 beats in a row): kalman, flow; back (replied again): ledger;
    down and back again: thermal (12 times) [last 10 s]
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class BreakerLog:
    """Collects breaker changes and logs them, summarised (see the module docstring)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        breaker_after: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.breaker_after = breaker_after
        self._clock = clock
        self._down: Counter[str] = Counter()
        self._back: Counter[str] = Counter()
        self._due = 0.0
        self._since = clock()
        #: Lines written (tests and the bench read it).
        self.lines = 0

    def down(self, name: str) -> None:
        """``name`` missed ``breaker_after`` beats in a row and is not waited for."""
        self._down[name] += 1
        self.tick()

    def back(self, name: str) -> None:
        """``name`` replied again and is waited for again."""
        self._back[name] += 1
        self.tick()

    def tick(self, now: float | None = None) -> None:
        """Write the summary if there is one and the interval has passed (cheap otherwise)."""
        if not (self._down or self._back):
            return
        now = self._clock() if now is None else now
        if now < self._due:
            return
        self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Write what has accumulated now, whatever the interval."""
        if not (self._down or self._back):
            return
        now = self._clock() if now is None else now
        self.logger.warning("breaker: %s [last %.0f s]", self.summary(), now - self._since)
        self.lines += 1
        self._down.clear()
        self._back.clear()
        self._since = now
        self._due = now + self.interval

    def summary(self) -> str:
        """The accumulated changes in one line."""
        both = sorted(self._down.keys() & self._back.keys())
        down = sorted(self._down.keys() - self._back.keys())
        back = sorted(self._back.keys() - self._down.keys())
        parts = []
        if down:
            parts.append(f"down (missed {self.breaker_after} beats in a row): {', '.join(down)}")
        if back:
            parts.append(f"back (replied again): {', '.join(back)}")
        if both:
            flaps = ", ".join(f"{n} ({max(self._down[n], self._back[n])} times)" for n in both)
            parts.append(f"down and back again: {flaps}")
        return "; ".join(parts)
