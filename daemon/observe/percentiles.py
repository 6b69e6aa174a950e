"""The one percentile venom reports: nearest rank over a window of samples.

Beat times (``venom status``, the live line, the benches), reply latencies
(the load watch) and handler times of the NATS micro endpoints all use it,
so a p99 means the same thing wherever it is printed. It lives here, below
the bus, because the bus's micro endpoints report it too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

Sample = TypeVar("Sample", int, float)


def percentile(values: Iterable[Sample], q: float, empty: Sample) -> Sample:
    """Nearest-rank percentile ``q`` (0-100) of ``values``; ``empty`` when there are none."""
    ordered = sorted(values)
    if not ordered:
        return empty
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]
