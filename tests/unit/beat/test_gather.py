"""Gather: missing, breaker, late replies, deadlines (issue 2, item 5).

Each test runs on the in-memory bus and on a real nats-server.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from tests.helpers import Echo, Switchable, make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.base import Bus
from venom.daemon.bus.memorybus import MemoryBus
from venom.daemon.bus.natsbus import NatsBus
from venom.plugins.host import PluginHost
from venom.schemas import BeatRecord

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Bus]]:
    """(arbiter bus, plugin bus): one MemoryBus twice, or two NATS connections."""
    if request.param == "memory":
        bus = MemoryBus()
        yield bus, bus
        await bus.close()
        return
    url = request.getfixturevalue("nats_url")
    a, p = await NatsBus.connect(url), await NatsBus.connect(url)
    yield a, p
    await a.close()
    await p.close()


async def wait_until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.001)


async def test_missing_breaker_and_recovery(buses: tuple[Bus, Bus]) -> None:
    bus, pbus = buses
    sw, echo = Switchable(), Echo()
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    config = make_config(period=0.05, deadline=0.03, breaker_after=5)
    # Each alone, as two processes would be: a hung member would hold a batch.
    async with PluginHost([sw, echo], pbus, batch=False):
        arbiter = Arbiter(bus, config, record_sink=sink)
        async with anyio.create_task_group() as tg:
            await tg.start(arbiter.run)
            assert arbiter.discovery.live() == {"switchable", "echo"}
            await wait_until(lambda: len(records) >= 3)
            assert all(r.report.closed_by == "all" for r in records)
            sw.switch(False)
            switched = len(records)
            await wait_until(lambda: len(records) >= switched + 9)
            sw.switch(True)
            recovered_from = len(records)
            await wait_until(lambda: len(records) >= recovered_from + 6)
            arbiter.stop()

    # The beat in flight when it was switched off may or may not have had its reply.
    off = [
        r
        for r in records[switched:recovered_from]
        if "switchable" in r.report.missing or "switchable" in r.report.down
    ]
    misses = [r for r in off if r.report.missing == ["switchable"]]
    assert len(misses) == 5, [r.report for r in off]
    for r in misses:
        assert r.report.closed_by == "deadline"
        # Gathered until its deadline: 30 ms after the tick, less the tick's lateness.
        budget = r.pulse.deadline - r.pulse.issued_at
        assert 0.015 < budget <= 0.0301
        assert r.report.gather_s >= budget - 0.001
        assert r.decision.missing == ["switchable"]
    down = off[5:]
    assert down, "expected beats after the breaker opened"
    for r in down:
        assert r.report.down == ["switchable"]
        assert r.report.expected == ["echo"]
        assert r.report.missing == []
        assert r.report.closed_by == "all"
    # Switched on: its backlog arrives late (counted, dropped), then it is waited for again.
    tail = records[recovered_from:]
    assert sum(sum(r.report.late.values()) for r in records) >= 1
    assert any("switchable" in r.report.replied for r in tail)
    assert tail[-1].report.down == []
    assert "switchable" in tail[-1].report.expected
    h = arbiter.gather.health["switchable"]
    assert h.late >= 1
    assert h.down is False


async def test_slow_plugin_does_not_delay_the_next_tick(buses: tuple[Bus, Bus]) -> None:
    bus, pbus = buses
    sw = Switchable()
    sw.delay = 1.0  # every reply misses the 10 ms deadline by far
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    config = make_config(period=0.05, deadline=0.01, breaker_after=1000)
    async with PluginHost([sw], pbus):
        arbiter = Arbiter(bus, config, record_sink=sink)
        async with anyio.create_task_group() as tg:
            await tg.start(arbiter.run)
            await wait_until(lambda: len(records) >= 10)
            arbiter.stop()
    first = records[:10]
    assert all(r.report.missing == ["switchable"] for r in first)
    assert all(r.report.closed_by == "deadline" for r in first)
    # Each beat closed long before the reply could come (waiting for it would
    # take 1 s a beat and miss about 19 ticks each); a loaded machine may still
    # miss the odd tick, for reasons of its own.
    assert all(r.decision.t_obs < 0.5 for r in first)
    assert arbiter.scheduler.missed < len(records)


async def test_overrunning_beats_skip_ticks_and_count_them(buses: tuple[Bus, Bus]) -> None:
    bus, pbus = buses
    sw = Switchable()
    sw.switch(False)
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    # A deadline longer than the period: every beat overruns ~3 ticks.
    config = make_config(period=0.01, deadline=0.035, breaker_after=1000)
    async with PluginHost([sw], pbus):
        arbiter = Arbiter(bus, config, record_sink=sink)
        async with anyio.create_task_group() as tg:
            await tg.start(arbiter.run)
            await wait_until(lambda: len(records) >= 5)
            arbiter.stop()
            sw.switch(True)
    assert [r.beat for r in records] == list(range(1, len(records) + 1))
    # 3 ticks skipped per beat (the 4th, 40 ms later, starts the next beat), never queued.
    assert arbiter.scheduler.missed >= 3 * (len(records) - 1)
    starts = [r.pulse.issued_at for r in records]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(g >= 0.035 for g in gaps), gaps
