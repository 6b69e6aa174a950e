"""Control requests, telemetry, mesh input and fail-closed guards on a real server."""

from __future__ import annotations

import anyio
import msgspec
import nats
import pytest

from tests.helpers import Echo, make_config
from venom.daemon.arbiter import Arbiter
from venom.daemon.natsbus import NatsBus
from venom.daemon.settings import PluginsConfig
from venom.plugins.cores import EntropyCore
from venom.plugins.host import PluginHost
from venom.schemas import Anomaly, BeatRecord, Codec, Subjects, Telemetry

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def wait_for_beat(arbiter: Arbiter, beat: int) -> None:
    with anyio.fail_after(10):
        while arbiter.beat < beat:
            await anyio.sleep(0.005)


async def test_pause_resume_weights_and_status(nats_url: str) -> None:
    subjects = Subjects("ctl")
    nc = await nats.connect(nats_url)
    bus = await NatsBus.connect(nats_url)
    pbus = await NatsBus.connect(nats_url)
    try:
        async with PluginHost([Echo()], pbus, subjects=subjects):
            arbiter = Arbiter(bus, make_config(prefix="ctl", period=0.005))
            async with anyio.create_task_group() as tg:
                await tg.start(arbiter.run)
                await wait_for_beat(arbiter, 5)
                ack = msgspec.json.decode(
                    (await nc.request(subjects.ctl_pause, b"", timeout=2)).data
                )
                assert ack["paused"] is True
                await anyio.sleep(0.05)
                paused_at = arbiter.beat
                await anyio.sleep(0.1)
                assert arbiter.beat == paused_at
                status = msgspec.json.decode(
                    (await nc.request(subjects.ctl_status, b"", timeout=2)).data
                )
                assert status["paused"] is True
                assert status["beat"] == paused_at
                await nc.request(subjects.ctl_resume, b"", timeout=2)
                await wait_for_beat(arbiter, paused_at + 5)
                body = msgspec.json.encode({"R": 0.4, "B": 0.2, "E": 0.2, "O": 0.2})
                ack = msgspec.json.decode(
                    (await nc.request(subjects.ctl_weights, body, timeout=2)).data
                )
                assert ack["weights"]["R"] == pytest.approx(0.4)
                assert pytest.approx(0.4, abs=0.06) == arbiter.genome.weights.R
                arbiter.stop()
    finally:
        await nc.close()
        await bus.close()
        await pbus.close()


async def test_telemetry_features_and_mesh_anomalies_reach_the_pulse(nats_url: str) -> None:
    subjects = Subjects("feed")
    codec = Codec()
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    bus = await NatsBus.connect(nats_url)
    pbus = await NatsBus.connect(nats_url)
    try:
        async with PluginHost([EntropyCore()], pbus, subjects=subjects):
            arbiter = Arbiter(bus, make_config(prefix="feed", period=0.005), record_sink=sink)
            async with anyio.create_task_group() as tg:
                await tg.start(arbiter.run)
                await pbus.publish(
                    subjects.telemetry("probe"),
                    codec.encode(Telemetry(source="probe", values={"t": 41.5})),
                )
                await pbus.publish(
                    subjects.mesh_anomaly, codec.encode(Anomaly(source="operator", beats=3))
                )
                await pbus.flush()
                start = arbiter.beat
                await wait_for_beat(arbiter, start + 10)
                arbiter.stop()
    finally:
        await bus.close()
        await pbus.close()
    with_feature = [r for r in records if r.pulse.features.get("probe.t") == 41.5]
    assert with_feature, "telemetry never reached a pulse"
    mesh = [r for r in records if r.pulse.context.anomalies]
    assert len(mesh) == 3
    flagged = [r for r in records if r.decision.threat > 0]
    assert flagged, "the E core never saw the mesh anomaly"


async def test_required_guard_missing_fails_closed_live(nats_url: str) -> None:
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    bus = await NatsBus.connect(nats_url)
    pbus = await NatsBus.connect(nats_url)
    config = make_config(
        prefix="guarded", period=0.005, plugins=PluginsConfig(run=[], required_guards=["cusum"])
    )
    try:
        async with PluginHost([Echo()], pbus, subjects=Subjects("guarded")):
            arbiter = Arbiter(bus, config, record_sink=sink)
            with anyio.fail_after(10):
                await arbiter.run(beats=10)
    finally:
        await bus.close()
        await pbus.close()
    assert [r.decision.action for r in records] == ["ALERT"] * 10
    assert all(r.decision.vetoes == ["cusum"] for r in records)
