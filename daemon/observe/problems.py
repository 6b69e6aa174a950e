"""Log a recurring problem once, then count it.

Bad input arrives at beat rate; logging every occurrence would flood the
log. :class:`ProblemLog` logs the first occurrence of each (kind, source)
with its subject, then at most once per ``interval`` seconds with a count.
"""

from __future__ import annotations

import logging
import time
from collections import Counter


class ProblemLog:
    """Counts problems per (kind, source) and logs each key rarely."""

    def __init__(self, logger: logging.Logger, *, interval: float = 60.0) -> None:
        self.logger = logger
        self.interval = interval
        self.counts: Counter[tuple[str, str]] = Counter()
        self._last: dict[tuple[str, str], float] = {}
        self._suppressed: Counter[tuple[str, str]] = Counter()

    def report(self, kind: str, source: str, subject: str, detail: str) -> None:
        """Count one ``kind`` problem from ``source`` seen on ``subject``."""
        key = (kind, source)
        self.counts[key] += 1
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] += 1
            return
        self._last[key] = now
        again = self._suppressed.pop(key, 0)
        more = f" ({again} more since last report)" if again else ""
        self.logger.warning("%s from %s on %s: %s%s", kind, source or "?", subject, detail, more)

    def total(self, kind: str | None = None) -> int:
        """How many problems (of ``kind``) were counted."""
        return sum(n for (k, _), n in self.counts.items() if kind is None or k == kind)
