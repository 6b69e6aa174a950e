"""Running figures of the beat loop: rate, beat-time percentiles, counts.

Fed once per beat by the arbiter; read through the arbiter's snapshot
(:mod:`venom.daemon.beat.snapshot`) and by the bench. Percentiles are over
the last ``window`` beats.
"""

from __future__ import annotations

import time
from collections import Counter, deque

from venom.daemon.observe.percentiles import percentile
from venom.schemas import Decision, GatherReport


class BeatStats:
    """Counters and a window of beat durations."""

    def __init__(self, *, window: int = 4096) -> None:
        self.durations: deque[float] = deque(maxlen=window)
        self._stamps: deque[float] = deque(maxlen=65536)
        self.decisions: Counter[str] = Counter()
        self.beats = 0
        self.replies = 0
        #: Replies waited for (the expected plugins of every beat, summed).
        self.expected = 0
        self.late = 0
        self.missing = 0
        self.failed = 0
        self.rejected = 0
        self.started = time.monotonic()

    def record(self, report: GatherReport, decision: Decision, duration: float) -> None:
        """Count one finished beat."""
        self.beats += 1
        self.durations.append(duration)
        self._stamps.append(time.monotonic())
        self.decisions[decision.action] += 1
        self.replies += len(report.replied)
        self.expected += len(report.expected)
        if report.late:
            self.late += sum(report.late.values())
        self.missing += len(report.missing)
        self.failed += len(report.failed)
        self.rejected += len(report.rejected)

    def rate(self, horizon: float = 1.0) -> float:
        """Beats per second over the last ``horizon`` seconds."""
        now = time.monotonic()
        cutoff = now - horizon
        n = 0
        for t in reversed(self._stamps):
            if t < cutoff:
                break
            n += 1
        span = min(horizon, now - self.started)
        return n / span if span > 0 else 0.0

    def mean_rate(self) -> float:
        """Beats per second from the first to the last beat of the window (65,536 beats)."""
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) / span if span > 0 else 0.0

    def percentile(self, q: float) -> float:
        """Beat-duration percentile ``q`` (0-100) over the window, seconds."""
        return percentile(self.durations, q, 0.0)
