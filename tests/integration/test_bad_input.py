"""Bad input never stops the beat (issue 2, item 6), over a real nats-server."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import msgspec
import nats
import pytest

from tests.helpers import Echo, make_config
from venom.daemon.arbiter import Arbiter
from venom.daemon.natsbus import NatsBus
from venom.plugins.host import PluginHost
from venom.schemas import (
    HDR_PLUGIN,
    HDR_SERVICE_ERROR,
    HDR_SERVICE_ERROR_CODE,
    BeatRecord,
    Subjects,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

BAD_REPLIES = [
    b"this is not json",
    b'{"type": "no-such-reply", "score": 1}',
    b'{"type": "core", "score": 0.5}',  # missing field "core"
    b'{"type": "core", "core": "E", "score": NaN}',
    b'{"type": "core", "core": "E", "score": 0.5, "notes": ["' + b"x" * 1_000_000 + b'"]}',
]


async def test_bad_replies_are_rejected_counted_and_logged_once(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="venom")
    subjects = Subjects("badin")
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    rogue = await nats.connect(nats_url, name="rogue")
    sent: list[int] = []

    async def answer(msg: Any) -> None:
        i = len(sent)
        sent.append(i)
        await rogue.publish(
            msg.reply, BAD_REPLIES[i % len(BAD_REPLIES)], headers={HDR_PLUGIN: "rogue"}
        )

    await rogue.subscribe(subjects.pulse, queue=subjects.queue_group("rogue"), cb=answer)
    await rogue.flush()
    bus = await NatsBus.connect(nats_url, name="t-arbiter")
    pbus = await NatsBus.connect(nats_url, name="t-plugins")
    try:
        async with PluginHost([Echo()], pbus, subjects=subjects):
            await pbus.flush()
            arbiter = Arbiter(
                bus, make_config(prefix="badin", period=0.01, deadline=0.2), record_sink=sink
            )
            with anyio.fail_after(30):
                await arbiter.run(beats=20)
    finally:
        await bus.close()
        await pbus.close()
        await rogue.close()

    assert [r.beat for r in records] == list(range(1, 21))
    health = arbiter.gather.health["rogue"]
    # The rogue is not a micro service: the arbiter learns of it from its first
    # reply, which may arrive after beat 1 closed; learned at the end of the beat
    # it is heard in, it is waited for from beat 3 at the latest.
    assert health.rejected + health.late == 20
    assert health.rejected >= 18
    assert health.replies == 0
    rejected = {r.beat: r.report.rejected.get("rogue", "") for r in records}
    assert all(rejected[b] for b in range(3, 21)), rejected
    for beat, text in rejected.items():
        if text:
            needle = ["malformed", "no-such-reply", "core", "malformed", "exceeds the limit"]
            assert needle[(beat - 1) % 5] in text, (beat, text)
    # Every beat still got its decision and echo's reply.
    assert all("echo" in r.report.replied for r in records)
    logged = [rec for rec in caplog.records if "rejected reply from rogue" in rec.getMessage()]
    assert len(logged) == 1
    assert "_INBOX." in logged[0].getMessage()


async def test_junk_on_pulse_telemetry_and_ctl(nats_url: str) -> None:
    subjects = Subjects("junk")
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    nc = await nats.connect(nats_url, name="junk-sender")
    bus = await NatsBus.connect(nats_url, name="t-arbiter")
    pbus = await NatsBus.connect(nats_url, name="t-plugins")
    echo = Echo()
    try:
        async with PluginHost([echo], pbus, subjects=subjects) as host:
            await pbus.flush()
            arbiter = Arbiter(
                bus, make_config(prefix="junk", period=0.01, deadline=0.2), record_sink=sink
            )
            async with anyio.create_task_group() as tg:
                await tg.start(arbiter.run)
                # Junk pulse with a reply subject: the plugin answers with a micro error.
                reply = await nc.request(subjects.pulse, b"{not a pulse", timeout=2)
                assert reply.headers[HDR_SERVICE_ERROR_CODE] == "400"
                assert "malformed pulse" in reply.headers[HDR_SERVICE_ERROR]
                # Junk pulse without a reply subject: dropped, counted.
                await nc.publish(subjects.pulse, b'{"beat": "one"}')
                # Junk telemetry: counted, dropped.
                await nc.publish(subjects.telemetry("plant"), b"\xff\xfe garbage")
                await nc.publish(
                    subjects.telemetry("plant"), b'{"source": "plant", "values": {"t": "hot"}}'
                )
                # Junk control requests: error replies with micro headers.
                bad = await nc.request(subjects.ctl_weights, b'{"R": "lots"}', timeout=2)
                assert bad.headers[HDR_SERVICE_ERROR_CODE] == "400"
                assert "R" in bad.headers[HDR_SERVICE_ERROR]
                neg = await nc.request(subjects.ctl_weights, b'{"R": -1}', timeout=2)
                assert neg.headers[HDR_SERVICE_ERROR_CODE] == "400"
                unknown = await nc.request("junk.ctl.explode", b"", timeout=2)
                assert unknown.headers[HDR_SERVICE_ERROR_CODE] == "404"
                assert msgspec.json.decode(unknown.data)["code"] == 404
                # And the good ones still work.
                ok = await nc.request(subjects.ctl_status, b"", timeout=2)
                assert ok.headers is None or HDR_SERVICE_ERROR not in ok.headers
                before = arbiter.beat
                with anyio.fail_after(10):
                    while arbiter.beat < before + 20:
                        await anyio.sleep(0.01)
                arbiter.stop()
            runner = host.runners[0]
            assert runner.rejected == 2
            assert arbiter.inputs.problems.total("malformed telemetry") == 2
    finally:
        await nc.close()
        await bus.close()
        await pbus.close()
    assert [r.beat for r in records] == list(range(1, len(records) + 1))
    assert all(r.report.replied.keys() == {"echo"} for r in records[-10:])
