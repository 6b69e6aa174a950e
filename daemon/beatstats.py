"""Running figures of the beat loop: rate, beat-time percentiles, counts.

Fed once per beat by the arbiter; read by the live line, ``venom status``
and the bench. Percentiles are over the last ``window`` beats.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Sequence

from venom.schemas import Decision, GatherReport


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


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
        return percentile(self.durations, q)

    def line(self, beat: int, missed_ticks: int) -> str:
        """The compact live line."""
        acts = " ".join(f"{a[:4]}={n}" for a, n in sorted(self.decisions.items()))
        return (
            f"beat {beat} | {self.rate():7.1f}/s | {acts or '-'} | missed {missed_ticks} "
            f"| late {self.late} missing {self.missing} bad {self.failed + self.rejected} "
            f"| p50 {self.percentile(50) * 1e3:.2f} ms p99 {self.percentile(99) * 1e3:.2f} ms"
        )
