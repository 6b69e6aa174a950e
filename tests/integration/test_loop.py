"""The loop over a real nats-server: arbiter + the four cores (issue 2, item 2)."""

from __future__ import annotations

import anyio
import pytest

from tests.helpers import make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.base import BusMessage
from venom.daemon.bus.natsbus import NatsBus
from venom.plugins.cores import BalanceCore, EntropyCore, OptimizeCore, RegenCore
from venom.plugins.host import PluginHost
from venom.schemas import BeatRecord, Codec, Decision, Subjects

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_four_cores_200_beats(nats_url: str) -> None:
    # T_Λ as the period; a generous deadline so that a machine busy with other
    # work (CI runs two cores) makes late ticks, not missing replies.
    config = make_config(prefix="loop200", deadline=0.1)
    subjects = Subjects("loop200")
    codec = Codec()
    records: list[BeatRecord] = []
    decisions: list[Decision] = []

    async def sink(record: BeatRecord) -> None:
        records.append(record)

    async def on_decision(msg: BusMessage) -> None:
        decisions.append(codec.decode(Decision, msg.data))

    arbiter_bus = await NatsBus.connect(nats_url, name="t-arbiter")
    plugin_bus = await NatsBus.connect(nats_url, name="t-plugins")
    watcher = await NatsBus.connect(nats_url, name="t-watcher")
    try:
        await watcher.subscribe(subjects.decision, on_decision)
        await watcher.flush()
        cores = [RegenCore(), BalanceCore(), EntropyCore(), OptimizeCore()]
        async with PluginHost(cores, plugin_bus, subjects=subjects):
            await plugin_bus.flush()
            arbiter = Arbiter(arbiter_bus, config, record_sink=sink)
            with anyio.fail_after(30):
                await arbiter.run(beats=200)
            assert arbiter.k == 4
            assert arbiter.p == 5
            assert arbiter.period == pytest.approx(0.0042105, rel=1e-3)
        await arbiter_bus.flush()
        with anyio.fail_after(5):
            while len(decisions) < 200:
                await anyio.sleep(0.01)
    finally:
        await watcher.close()
        await plugin_bus.close()
        await arbiter_bus.close()

    assert [r.beat for r in records] == list(range(1, 201))
    for r in records:
        assert sorted(r.report.replied) == [
            "balance-core",
            "entropy-core",
            "optimize-core",
            "regen-core",
        ], f"beat {r.beat}: {r.report}"
        assert r.report.missing == []
        assert r.report.closed_by == "all"
        assert r.decision.beat == r.beat
        assert {type(x).__name__ for x in r.replies.values()} == {"CoreReply"}
    assert [d.beat for d in decisions] == list(range(1, 201))
    assert [d.action for d in decisions] == [r.decision.action for r in records]
