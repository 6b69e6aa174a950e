"""Telling the operator the beat is not kept, once; breaker changes summarised (issue 12)."""

from __future__ import annotations

import logging

import pytest

from venom.daemon.beat.breakerlog import BreakerLog
from venom.daemon.beat.loadwatch import LoadWatch
from venom.schemas import GatherReport


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PLUGINS = ["fast", "slow", "gone"]


def beat(n: int, *, slow: float = 0.001, gone: bool = False) -> GatherReport:
    replied = {"fast": 0.0002, "slow": slow}
    if not gone:
        replied["gone"] = 0.0003
    return GatherReport(beat=n, expected=PLUGINS, replied=replied, missing=["gone"] if gone else [])


def test_a_kept_beat_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    watch = LoadWatch(logging.getLogger("t"), clock=clock)
    for n in range(3000):
        clock.now += 0.004
        watch.beat(beat(n), 0.0032, missed_ticks=n // 200)  # 0.5 % of ticks missed
    assert watch.report().fits
    assert watch.report().beats > 2000
    assert watch.warnings == 0
    assert caplog.records == []


def test_an_overloaded_beat_is_said_once_naming_the_slowest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    watch = LoadWatch(logging.getLogger("t"), clock=clock, repeat=300.0)
    missed = 0
    for n in range(60_000):  # 4 minutes at 4 ms
        clock.now += 0.004
        missed += n % 10 == 0  # 10 % of ticks missed
        watch.beat(beat(n, slow=0.0031, gone=n % 4 == 0), 0.0032, missed_ticks=missed)
    report = watch.report()
    assert not report.fits
    assert report.missed_ticks_pct == pytest.approx(100 / 11, abs=0.5)
    assert report.missing_pct == pytest.approx(100 / 12, abs=0.5)
    assert [s.name for s in report.slowest] == ["gone", "slow", "fast"]
    gone, slow, _ = report.slowest
    assert gone.p99_ms is None
    assert gone.missing_pct == pytest.approx(25, abs=1)
    assert slow.p99_ms == pytest.approx(3.1)
    assert slow.share == pytest.approx(3.1 / 3.2, abs=0.01)
    # Once in four minutes (the repeat is five), one line naming them.
    assert watch.warnings == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("the beat is not kept: 9.")
    assert "gone missing in 25 % of beats" in line
    assert "slow p99 3.10 ms (97 % of the 3.20 ms budget)" in line
    # Kept again: one line more.
    for n in range(3000):
        clock.now += 0.004
        watch.beat(beat(n), 0.0032, missed_ticks=missed)
    assert watch.report().fits
    assert caplog.records[-1].getMessage().startswith("the beat is kept again")
    assert len(caplog.records) == 2


def test_breaker_flaps_are_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    breaker = BreakerLog(logging.getLogger("t"), interval=10.0, clock=clock)
    breaker.down("kalman")  # the first change is said at once
    assert [r.getMessage() for r in caplog.records] == [
        "breaker: down (missed 5 beats in a row): kalman [last 0 s]"
    ]
    for _ in range(50):  # a minute of flapping, at beat rate
        for _ in range(100):
            clock.now += 0.012
            breaker.back("kalman")
            breaker.down("kalman")
            breaker.tick()
        breaker.back("ledger")
    breaker.flush()
    assert breaker.lines <= 1 + 60 / 10 + 1
    assert len(caplog.records) == breaker.lines
    lines = [r.getMessage() for r in caplog.records]
    assert any("back (replied again): ledger" in line for line in lines)
    assert all("down and back again: kalman (" in line for line in lines[1:])
