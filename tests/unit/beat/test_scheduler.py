"""The drift-free scheduler, with a fake clock."""

from __future__ import annotations

import pytest

from venom.daemon.beat.scheduler import Scheduler


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_ticks_fall_on_the_grid_without_drift() -> None:
    clock = FakeClock()
    s = Scheduler(0.005, clock=clock)
    for n in range(1, 1001):
        index, due, skipped = s.next_due()
        assert skipped == 0
        assert due == pytest.approx(100.0 + n * 0.005 - 0.005, abs=1e-9)
        clock.t = due + 0.0007  # every wake-up is late by 0.7 ms ...
        s.index = index
    # ... and yet tick 1000 is due exactly 999 periods after tick 1.
    assert s.next_due()[1] == pytest.approx(100.0 + 1000 * 0.005, abs=1e-9)


def test_overrun_skips_and_counts_ticks_instead_of_queueing() -> None:
    clock = FakeClock()
    s = Scheduler(0.01, clock=clock)
    s.index = 0
    clock.t = 100.0 + 0.035  # the beat of tick 0 ran 35 ms
    index, due, skipped = s.next_due()
    assert (index, skipped) == (4, 3)
    assert due == pytest.approx(100.04)


def test_period_change_reanchors_at_the_last_tick() -> None:
    clock = FakeClock()
    s = Scheduler(0.01, clock=clock)
    s.index = 5
    s.set_period(0.02)
    assert s.next_due()[1] == pytest.approx(100.05 + 0.02)


def test_back_to_back_never_waits() -> None:
    clock = FakeClock()
    s = Scheduler(0.0, clock=clock)
    assert s.next_due() == (0, 100.0, 0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_periods_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="period"):
        Scheduler(bad)


@pytest.mark.anyio
async def test_a_tick_woken_too_late_is_missed_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    stalls = iter([0.0035, 0.0, 0.0])  # the first sleep wakes 3.5 ms late

    async def fake_sleep(seconds: float) -> None:
        clock.t += seconds + next(stalls)

    monkeypatch.setattr("venom.daemon.beat.scheduler.anyio.sleep", fake_sleep)
    s = Scheduler(0.004, clock=clock)
    s.restart()
    first = await s.wait(max_lateness=0.0016)
    assert (first.index, first.skipped) == (0, 0)
    clock.t += 0.001  # a short beat
    tick = await s.wait(max_lateness=0.0016)  # tick 1 wakes 3.5 ms late → missed
    assert tick.index == 2
    assert tick.skipped == 1
    assert s.missed == 1
    assert tick.lateness <= 0.0016
