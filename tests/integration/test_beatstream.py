"""BeatPublisher on a real server: a record lost on its way is sent again, in beat order."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from venom.daemon.bus.beatstream import BeatPublisher
from venom.daemon.bus.natsbus import NatsBus
from venom.daemon.bus.streamtail import read_tail
from venom.schemas import (
    BeatRecord,
    Codec,
    Decision,
    GatherReport,
    Pulse,
    Subjects,
)

pytestmark = [pytest.mark.integration]


def record(beat: int) -> BeatRecord:
    pulse = Pulse(beat=beat, issued_at=1.0, deadline=1.1, t_lambda=0.004, seed=beat)
    return BeatRecord(
        beat=beat,
        pulse=pulse,
        report=GatherReport(beat=beat),
        decision=Decision(beat=beat, action="STEADY"),
    )


@pytest.mark.anyio
async def test_a_lost_record_is_sent_again_and_the_stream_keeps_beat_order(nats_url: str) -> None:
    bus = await NatsBus.connect(nats_url)
    subjects = Subjects("bslost")
    try:
        publisher = BeatPublisher(bus, subjects, Codec(), ack_timeout=0.5)
        await publisher.start()
        await bus.nc.jetstream().purge_stream(publisher.stream)
        publisher.resume(await read_tail(publisher.js, subjects, Codec()))
        real_publish = bus.publish
        dropped: list[int] = []

        async def lossy(subject: str, data: bytes, **kw: Any) -> None:
            if subject == subjects.beat and not dropped and b'"beat":2,' in data:
                dropped.append(2)  # lost in the socket, as on a dropped connection
                return
            await real_publish(subject, data, **kw)

        bus.publish = lossy  # type: ignore[method-assign]
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher.run)
            for beat in (1, 2, 3):
                await publisher(record(beat))
            await publisher.flush(timeout=10)
            tg.cancel_scope.cancel()
        assert dropped == [2]
        assert publisher.backlog == 0
        assert publisher.published == 3
        assert publisher.failed >= 1  # beat 3 refused: its predecessor was not stored
        assert publisher.resent >= 2
        info = await bus.nc.jetstream().stream_info(publisher.stream)
        assert info.state.messages == 3
        beats = []
        for seq in (1, 2, 3):
            msg = await bus.nc.jetstream().get_msg(publisher.stream, seq)
            beats.append(Codec().decode(BeatRecord, msg.data or b"").beat)
        assert beats == [1, 2, 3]
    finally:
        await bus.close()
