"""Is the beat kept? Missed ticks and missing replies over a window, and who is slow.

The arbiter feeds :class:`LoadWatch` once per beat (a few counters and one
latency per replying plugin). Every ``window`` seconds it looks back: when
missed ticks (of all ticks) or missing replies (of all expected) pass
``threshold`` (1 %), the beat does not fit the machine, and one warning
names the slowest plugins by the 99th percentile of their reply latency
and its share of the gather budget::

    the beat is not kept: 38.2 % of ticks missed, 12.5 % of replies missing over
    the last 10 s; slowest: entropy-model missing in 41 % of beats, kalman p99
    3.10 ms (97 % of the 3.24 ms budget), ...; see docs/operations.md
    (Keeping the beat)

It is said once, again at most every ``repeat`` seconds while it lasts,
and once more (info) when the beat is kept again. :meth:`LoadWatch.report`
gives the same as a :class:`~venom.schemas.LoadReport` for ``venom status``
and the metrics.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable

from venom.daemon.observe.percentiles import percentile
from venom.schemas import GatherReport, LoadReport, SlowPlugin

#: Latencies kept per plugin (a 10 s window at the default T_Λ is ~2,400 beats).
KEEP = 4096
SLOWEST = 3


class LoadWatch:
    """Watches whether the beat fits (see the module docstring)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        window: float = 10.0,
        threshold: float = 0.01,
        repeat: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.window = window
        self.threshold = threshold
        self.repeat = repeat
        self._clock = clock
        self._latency: dict[str, deque[float]] = {}
        self._beats = self._expected = self._missing = 0
        self._budget = 0.0
        self._mark = (0, 0, 0, 0, 0.0)  # beats, missed ticks, expected, missing, budget
        self._window_start = clock()
        self._due = self._window_start + window
        self._warned_at: float | None = None
        self.last = LoadReport()
        #: Warnings written (tests and the bench read it).
        self.warnings = 0

    def beat(self, report: GatherReport, budget: float, missed_ticks: int) -> None:
        """Count one closed beat; look back when a window has passed."""
        self._beats += 1
        self._expected += len(report.expected)
        self._budget += budget
        latency = self._latency
        for name, seconds in report.replied.items():
            ring = latency.get(name)
            if ring is None:
                ring = latency[name] = deque(maxlen=KEEP)
            ring.append(seconds)
        if report.missing:
            self._missing += len(report.missing)
            for name in report.missing:
                ring = latency.get(name)
                if ring is None:
                    ring = latency[name] = deque(maxlen=KEEP)
                ring.append(math.inf)
        now = self._clock()
        if now >= self._due:
            self.look_back(missed_ticks, now)

    def look_back(self, missed_ticks: int, now: float) -> LoadReport:
        """Judge the window that just ended; warn or clear as it says."""
        beats0, missed0, expected0, missing0, budget0 = self._mark
        beats = self._beats - beats0
        missed = missed_ticks - missed0
        expected = self._expected - expected0
        missing = self._missing - missing0
        ticks = beats + missed
        missed_pct = 100 * missed / ticks if ticks else 0.0
        missing_pct = 100 * missing / expected if expected else 0.0
        budget = (self._budget - budget0) / beats if beats else 0.0
        fits = missed_pct <= 100 * self.threshold and missing_pct <= 100 * self.threshold
        slowest = [] if fits else self._slowest(beats, budget)
        window = now - self._window_start
        reason = "" if fits else self._reason(missed_pct, missing_pct, window, budget, slowest)
        self.last = LoadReport(
            fits=fits,
            window_s=round(window, 3),
            beats=beats,
            missed_ticks_pct=round(missed_pct, 3),
            missing_pct=round(missing_pct, 3),
            budget_ms=round(budget * 1e3, 3),
            slowest=slowest,
            reason=reason,
        )
        self._tell(fits, reason, now)
        self._mark = (self._beats, missed_ticks, self._expected, self._missing, self._budget)
        self._window_start = now
        self._due = now + self.window
        # The next window's latencies only.
        for ring in self._latency.values():
            ring.clear()
        return self.last

    def report(self) -> LoadReport:
        """The last window's verdict."""
        return self.last

    def _slowest(self, beats: int, budget: float) -> list[SlowPlugin]:
        ranked: list[tuple[float, SlowPlugin]] = []
        for name, ring in self._latency.items():
            if not ring:
                continue
            values = list(ring)
            missed = sum(1 for v in values if v == math.inf)
            p99 = percentile(values, 99, 0.0)
            finite = math.isfinite(p99)
            ranked.append(
                (
                    p99 if finite else math.inf,
                    SlowPlugin(
                        name=name,
                        p99_ms=round(p99 * 1e3, 3) if finite else None,
                        share=round(p99 / budget, 3) if finite and budget > 0 else None,
                        missing_pct=round(100 * missed / len(values), 2),
                    ),
                )
            )
        ranked.sort(key=lambda item: (-item[0], -item[1].missing_pct, item[1].name))
        return [slow for _, slow in ranked[:SLOWEST]]

    @staticmethod
    def _reason(
        missed_pct: float,
        missing_pct: float,
        window: float,
        budget: float,
        slowest: list[SlowPlugin],
    ) -> str:
        named = []
        for s in slowest:
            if s.p99_ms is None:
                named.append(f"{s.name} missing in {s.missing_pct:.0f} % of beats")
            else:
                share = ""
                if s.share is not None:
                    share = f" ({100 * s.share:.0f} % of the {budget * 1e3:.2f} ms budget)"
                named.append(f"{s.name} p99 {s.p99_ms:.2f} ms{share}")
        return (
            f"the beat is not kept: {missed_pct:.1f} % of ticks missed, {missing_pct:.1f} % of "
            f"replies missing over the last {window:.0f} s; slowest: {', '.join(named) or '-'}; "
            "see docs/operations.md (Keeping the beat)"
        )

    def _tell(self, fits: bool, reason: str, now: float) -> None:
        if fits:
            if self._warned_at is not None:
                self.logger.info("the beat is kept again (missed ticks and replies under 1 %)")
                self._warned_at = None
            return
        if self._warned_at is None or now - self._warned_at >= self.repeat:
            self.logger.warning("%s", reason)
            self.warnings += 1
            self._warned_at = now
