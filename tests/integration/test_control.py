"""Control requests, telemetry, mesh input and fail-closed guards on a real server."""

from __future__ import annotations

import anyio
import msgspec
import nats
import pytest

from tests.helpers import Echo, make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.natsbus import NatsBus
from venom.daemon.config.settings import PluginsConfig
from venom.plugins.cores import EntropyCore
from venom.plugins.host import PluginHost
from venom.schemas import (
    HDR_SERVICE_ERROR,
    HDR_SERVICE_ERROR_CODE,
    Anomaly,
    BeatRecord,
    Codec,
    Subjects,
    Telemetry,
)

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


NO_ARGUMENT_JUNK = [
    (b"x", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"NaN", "not valid JSON"),
    (b"[1,2]", "JSON array"),
    (b"null", "JSON null"),
    (b'{"now": true}', "'now'"),
]

WEIGHTS_JUNK = [
    (b'{"Q": 0.5}', "unknown key(s) 'Q'"),
    (b'{"R": 0.5}', "missing B, E, O"),
    (b'{"R": "lots", "B": 1, "E": 1, "O": 1}', "R must be a number"),
    (b'{"R": -1, "B": 1, "E": 1, "O": 1}', "weight R must be >= 0"),
    (b'{"R": 1e308, "B": 1e308, "E": 1e308, "O": 1e308}', "sum overflows"),
    (b'{"R": 0, "B": 0, "E": 0, "O": 0}', "sum must be > 0"),
    (b"null", "JSON null"),
]


async def test_bad_control_bodies_get_a_400_and_change_nothing(nats_url: str) -> None:
    subjects = Subjects("ctlbad")
    nc = await nats.connect(nats_url)
    bus = await NatsBus.connect(nats_url)
    pbus = await NatsBus.connect(nats_url)

    async def refused(subject: str, body: bytes, needle: str) -> None:
        reply = await nc.request(subject, body, timeout=5)
        assert reply.headers is not None, (subject, body)
        assert reply.headers[HDR_SERVICE_ERROR_CODE] == "400", (subject, body)
        assert needle in reply.headers[HDR_SERVICE_ERROR], (body, reply.headers)
        doc = msgspec.json.decode(reply.data)
        assert doc["code"] == 400
        assert needle in doc["error"]

    try:
        async with PluginHost([Echo()], pbus, subjects=subjects):
            arbiter = Arbiter(bus, make_config(prefix="ctlbad", period=0.005))
            idle_turns: list[int] = []
            # A turn of the beat loop that sees the pause: no beat is in flight after it.
            arbiter.on_turn = lambda: idle_turns.append(arbiter.beat) if arbiter.paused else None
            async with anyio.create_task_group() as tg:
                await tg.start(arbiter.run)
                await wait_for_beat(arbiter, 3)
                for body, needle in NO_ARGUMENT_JUNK:
                    await refused(subjects.ctl_pause, body, needle)
                    await refused(subjects.ctl_status, body, needle)
                    assert not arbiter.paused, body
                good = msgspec.json.encode({"R": 0.4, "B": 0.2, "E": 0.2, "O": 0.2})
                await nc.request(subjects.ctl_weights, good, timeout=5)
                await nc.request(subjects.ctl_pause, b" {} ", timeout=5)
                with anyio.fail_after(20):
                    while not idle_turns:
                        await anyio.sleep(0.01)
                weights = arbiter.genome.weights
                for body, needle in NO_ARGUMENT_JUNK:
                    await refused(subjects.ctl_resume, body, needle)
                    assert arbiter.paused, body
                for body, needle in WEIGHTS_JUNK:
                    await refused(subjects.ctl_weights, body, needle)
                    assert arbiter.genome.weights == weights, body
                status = msgspec.json.decode(
                    (await nc.request(subjects.ctl_status, b"{}", timeout=5)).data
                )
                assert status["paused"] is True
                assert status["weights"] == msgspec.to_builtins(weights)
                assert pytest.approx(0.4, abs=0.06) == weights.R
                arbiter.stop()
    finally:
        await nc.close()
        await bus.close()
        await pbus.close()
