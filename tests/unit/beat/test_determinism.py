"""Same config, same seed → the same decisions (SPEC 8), with the four cores."""

from __future__ import annotations

import pytest

from tests.helpers import make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.memorybus import MemoryBus
from venom.plugins.cores import BalanceCore, EntropyCore, OptimizeCore, RegenCore
from venom.plugins.host import PluginHost
from venom.schemas import Anomaly, BeatRecord, beat_seed

pytestmark = pytest.mark.anyio


async def run_once(seed: int) -> list[BeatRecord]:
    bus = MemoryBus()
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)
        if r.beat == 50:  # an operator's anomaly mid-run, at the same beat both times
            arbiter.inputs._anomalies.append((Anomaly(source="op", beats=5), 5))

    cores = [RegenCore(), BalanceCore(), EntropyCore(), OptimizeCore()]
    async with PluginHost(cores, bus):
        arbiter = Arbiter(bus, make_config(period=0.0, seed=seed), record_sink=sink)
        await arbiter.run(beats=150)
    await bus.close()
    return records


async def test_two_runs_same_seed_same_decisions() -> None:
    one, two = await run_once(7), await run_once(7)
    assert [r.pulse.seed for r in one] == [beat_seed(7, b) for b in range(1, 151)]
    assert [r.pulse.seed for r in one] == [r.pulse.seed for r in two]

    def key(r: BeatRecord) -> tuple[object, ...]:
        d = r.decision
        return (d.beat, d.action, d.threat, d.urgency, d.gain, d.vetoes)

    assert [key(r) for r in one] == [key(r) for r in two]
    assert any(r.decision.threat > 0 for r in one)  # the anomaly did something
    assert [r.pulse.seed for r in await run_once(8)] != [r.pulse.seed for r in one]


def test_beat_seeds_differ_per_beat_and_run() -> None:
    seeds = {beat_seed(s, b) for s in range(10) for b in range(1000)}
    assert len(seeds) == 10_000
