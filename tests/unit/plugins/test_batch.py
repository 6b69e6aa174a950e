"""One message per host per beat (SPEC 2.2): ReplyBatch, counted member by member.

Each test runs on the in-memory bus and on a real nats-server.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import ClassVar

import anyio
import msgspec
import pytest

from tests.helpers import Echo, make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.base import Bus, BusMessage
from venom.plugins.host import PluginHost
from venom.plugins.sdk import NoConfig, Plugin
from venom.schemas import (
    HDR_HOST,
    HDR_SERVICE_ERROR_CODE,
    BeatRecord,
    Codec,
    EstimateReply,
    Pulse,
    Reply,
    ReplyBatch,
    Subjects,
    host_set,
)

pytestmark = pytest.mark.anyio


async def wait_until(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.002)


def named(plugin_name: str, *, fail: bool = False, nan: bool = False) -> Plugin[NoConfig]:
    """A small estimator called ``plugin_name`` that counts its calls."""

    class Named(Plugin[NoConfig]):
        name: ClassVar[str] = plugin_name
        role = "estimator"
        version: ClassVar[str] = "1.0.0"
        calls: ClassVar[list[int]] = []

        async def handle(self, pulse: Pulse) -> Reply:
            self.calls.append(pulse.beat)
            if fail:
                raise RuntimeError("broken on purpose")
            return EstimateReply(
                estimator=self.name, values={"beat": math.nan if nan else float(pulse.beat)}
            )

    return Named()


async def run_beats(
    bus: Bus, beats: int, prefix: str = "venom", **beat: float
) -> tuple[Arbiter, list[BeatRecord]]:
    """Run an arbiter on ``bus`` for ``beats`` beats once it sees ``expect`` plugins."""
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    # Deadlines far longer than a reply takes, even on a loaded machine.
    config = make_config(prefix, **{"period": 0.05, "deadline": 0.04, **beat})
    arbiter = Arbiter(bus, config, record_sink=sink)
    async with anyio.create_task_group() as tg:
        await tg.start(arbiter.run)
        await wait_until(lambda: len(records) >= beats)
        arbiter.stop()
    return arbiter, records


async def test_batch_and_single_replies_meet_in_one_beat(buses: tuple[Bus, Bus, Bus]) -> None:
    bus, pbus, qbus = buses
    a, b = named("alpha"), named("beta")
    async with PluginHost([a, b], pbus) as host, PluginHost([Echo()], qbus) as alone:
        assert host.batch is not None
        assert alone.batch is None
        # A deadline far longer than any reply takes, even on a loaded machine.
        arbiter, records = await run_beats(bus, 20, period=0.1, deadline=0.09)
    assert arbiter.discovery.live() >= {"alpha", "beta", "echo"}
    steady = [r for r in records if set(r.report.expected) == {"alpha", "beta", "echo"}]
    assert len(steady) >= 10
    for r in steady:
        # Counted one by one, as if each had answered alone.
        assert set(r.report.replied) == {"alpha", "beta", "echo"}
        assert r.report.missing == []
        assert r.report.closed_by == "all"
        assert r.replies["alpha"] == EstimateReply(estimator="alpha", values={"beat": r.beat})
    # One message per beat from the host (a split is counted; none is expected here).
    assert host.batch.batches == len(host.batch.answered) + host.batch.split
    for member in host.members:
        assert member.endpoint.queue_group == f"venom.host.{host_set(['alpha', 'beta'])}"
    assert all(h.duplicates == 0 for h in arbiter.gather.health.values())


async def test_a_failing_member_fails_alone(buses: tuple[Bus, Bus, Bus]) -> None:
    bus, pbus, _ = buses
    good, bad, nan = named("good"), named("bad", fail=True), named("nan", nan=True)
    async with PluginHost([good, bad, nan], pbus) as host:
        _, records = await run_beats(bus, 12)
    r = records[-1]
    assert set(r.report.replied) == {"good"}
    assert r.report.failed["bad"] == "RuntimeError: broken on purpose"
    assert "non-finite" in r.report.failed["nan"]
    assert r.report.missing == []
    by_name = {m.name: m for m in host.members}
    assert by_name["bad"].endpoint.num_errors >= 10
    assert by_name["good"].endpoint.num_errors == 0


async def test_a_malformed_member_is_rejected_alone_and_duplicates_count_once(
    buses: tuple[Bus, Bus, Bus],
) -> None:
    """A hand-made batch: one member malformed, one a plugin also answering alone."""
    bus, pbus, qbus = buses
    subjects = Subjects()

    async def rogue(msg: BusMessage) -> None:
        beat = msgspec.json.decode(msg.data)["beat"]
        body = {
            "host": "rogue",
            "beat": beat,
            "replies": {
                "fine": {"type": "estimate", "estimator": "fine", "values": {"x": 1.0}},
                "broken": {"type": "estimate", "estimator": "broken", "values": "not a map"},
                "echo": {"type": "estimate", "estimator": "echo", "values": {"beat": -1.0}},
            },
        }
        await qbus.publish(msg.reply, msgspec.json.encode(body), headers={HDR_HOST: "rogue"})

    sub = await qbus.subscribe(subjects.pulse, rogue, queue="venom.host.rogue")
    try:
        async with PluginHost([Echo()], pbus):
            # A deadline long enough for both answers of echo to land in the beat.
            arbiter, records = await run_beats(bus, 15, period=0.05, deadline=0.04)
    finally:
        await sub.unsubscribe()
    answered = [r for r in records if "fine" in r.report.replied]
    assert len(answered) >= 10
    for r in answered:
        assert r.report.rejected["broken"].startswith("reply: Expected `object`")
        assert "broken" not in r.report.replied
    # echo answered alone and in the rogue's batch: one of the two counts, never both.
    assert all(list(r.report.replied).count("echo") <= 1 for r in records)
    # Each beat both came in time, one of them was the duplicate (a loaded machine
    # may make one late instead: counted as late, not as a duplicate).
    echo = arbiter.gather.health["echo"]
    assert echo.duplicates >= 5
    assert echo.duplicates + echo.late >= len(answered) - 2
    assert arbiter.gather.health["broken"].rejected >= 10


async def test_replicas_of_one_host_set_answer_once_between_them(
    buses: tuple[Bus, Bus, Bus],
) -> None:
    bus, pbus, qbus = buses
    first = [named("left"), named("right")]
    second = [named("left"), named("right")]
    async with PluginHost(first, pbus) as h1, PluginHost(second, qbus) as h2:
        assert h1.batch is not None
        assert h2.batch is not None
        assert h1.batch.queue == h2.batch.queue
        arbiter, records = await run_beats(bus, 30)
    calls = type(first[0]).calls + type(second[0]).calls  # type: ignore[attr-defined]
    assert len(calls) == len(set(calls)), "a beat was answered by both replicas"
    assert all(h.duplicates == 0 for h in arbiter.gather.health.values())
    assert all("left" in r.report.replied for r in records[-10:])


async def test_a_host_answers_each_beat_once_and_drops_stale_pulses(
    buses: tuple[Bus, Bus, Bus],
) -> None:
    _, pbus, qbus = buses
    codec = Codec()
    plugins = [named("one"), named("two")]
    got: list[BusMessage] = []

    async def collect(msg: BusMessage) -> None:
        got.append(msg)

    inbox = qbus.new_inbox()
    sub = await qbus.subscribe(f"{inbox}.*", collect)
    now = time.time()
    pulse = Pulse(beat=7, issued_at=now, deadline=now + 60, t_lambda=0.004, seed=1)
    stale = Pulse(beat=8, issued_at=now - 2, deadline=now - 1, t_lambda=0.004, seed=1)
    try:
        async with PluginHost(plugins, pbus) as host:
            assert host.batch is not None
            for p in (pulse, pulse, stale):
                await qbus.publish("venom.pulse", codec.encode(p), reply=f"{inbox}.{p.beat}")
            await qbus.publish("venom.pulse", b"{not json", reply=f"{inbox}.9")
            await qbus.flush()
            await wait_until(lambda: len(got) >= 2)
            await wait_until(lambda: host.batch is not None and host.batch.stale == 1)
            assert host.batch.answered.repeats == 1
    finally:
        await sub.unsubscribe()
    good = ReplyBatch(
        host=host_set(["one", "two"]),
        beat=7,
        replies={
            "one": EstimateReply(estimator="one", values={"beat": 7.0}),
            "two": EstimateReply(estimator="two", values={"beat": 7.0}),
        },
    )
    assert [m.subject for m in got] == [f"{inbox}.7", f"{inbox}.9"]
    assert codec.decode(ReplyBatch, got[0].data) == good
    assert got[0].headers == {HDR_HOST: good.host}
    refused = codec.decode(ReplyBatch, got[1].data)
    assert got[1].headers is not None
    assert got[1].headers[HDR_SERVICE_ERROR_CODE] == "400"
    assert set(refused.replies) == {"one", "two"}
    assert all(r.code == 400 for r in refused.replies.values())  # type: ignore[union-attr]


class Waits(Plugin[NoConfig]):
    """Waits 30 ms on the event loop per pulse."""

    name: ClassVar[str] = "waits"
    role = "estimator"
    version: ClassVar[str] = "1.0.0"

    async def handle(self, pulse: Pulse) -> Reply:
        await anyio.sleep(0.03)
        return EstimateReply(estimator=self.name, values={"beat": float(pulse.beat)})


async def test_a_member_that_waits_does_not_make_the_others_late(
    buses: tuple[Bus, Bus, Bus],
) -> None:
    """What is ready goes out before a handler that waits; that one follows alone."""
    bus, pbus, _ = buses
    async with PluginHost([named("quick"), Waits(), named("after")], pbus) as host:
        _, records = await run_beats(bus, 25, period=0.05, deadline=0.01, breaker_after=1000)
    assert host.batch is not None
    assert host.batch.suspended >= 20
    tail = records[-10:]
    assert all("quick" in r.report.replied for r in tail), [r.report for r in tail]
    # Its reply comes 30 ms into a 10 ms budget: late, counted and dropped ...
    assert all("waits" in r.report.missing for r in tail)
    assert sum(r.report.late.get("waits", 0) for r in records) >= 10
    # ... and the member after it rides in its late batch.
    assert all("after" in r.report.missing for r in tail)


async def test_a_batch_goes_out_before_a_member_that_would_end_past_the_deadline(
    buses: tuple[Bus, Bus, Bus],
) -> None:
    _, pbus, qbus = buses
    codec = Codec()
    got: list[ReplyBatch] = []

    async def collect(msg: BusMessage) -> None:
        got.append(codec.decode(ReplyBatch, msg.data))

    inbox = qbus.new_inbox()
    sub = await qbus.subscribe(f"{inbox}.*", collect)
    try:
        async with PluginHost([named("first"), named("slow"), named("last")], pbus) as host:
            assert host.batch is not None
            for beat in (1, 2):
                if beat == 2:
                    # As if its last call had taken 60 s: it would end past the deadline.
                    host.batch.members[1].last_ns = 60 * 10**9
                now = time.time()
                p = Pulse(beat=beat, issued_at=now, deadline=now + 30, t_lambda=30, seed=1)
                await qbus.publish("venom.pulse", codec.encode(p), reply=f"{inbox}.{beat}")
                await qbus.flush()
                wanted = 1 if beat == 1 else 2
                await wait_until(lambda: sum(m.beat == beat for m in got) >= wanted)  # noqa: B023
            assert host.batch.split == 1
    finally:
        await sub.unsubscribe()
    # Beat 1: nothing known of the slow member yet, one batch. Beat 2: split before it.
    assert [(m.beat, sorted(m.replies)) for m in got] == [
        (1, ["first", "last", "slow"]),
        (2, ["first"]),
        (2, ["last", "slow"]),
    ]


async def test_work_after_the_reply_waits_for_the_batch_to_go_out(
    buses: tuple[Bus, Bus, Bus],
) -> None:
    """``after_reply`` runs once the beat's batch is sent: a slow one makes no reply late."""
    bus, pbus, _ = buses
    after: list[int] = []

    class Learner(Plugin[NoConfig]):
        name: ClassVar[str] = "learner"
        role = "model"
        version: ClassVar[str] = "1.0.0"

        async def handle(self, pulse: Pulse) -> Reply:
            return EstimateReply(estimator=self.name, values={"beat": float(pulse.beat)})

        async def after_reply(self, pulse: Pulse) -> None:
            after.append(pulse.beat)
            if pulse.beat == 5:
                await anyio.sleep(0.3)  # far past the 40 ms deadline: only the next beats wait
            if pulse.beat == 3:
                raise RuntimeError("after-reply broken on purpose")

    async with PluginHost([named("alpha"), Learner()], pbus) as host:
        _, records = await run_beats(bus, 12)
    by_beat = {r.beat: r for r in records}
    for beat in (3, 5):  # neither the error nor the wait held back the beat's own replies
        assert set(by_beat[beat].report.replied) >= {"alpha", "learner"}, by_beat[beat].report
    assert {3, 5} <= set(after)
    learner = next(m for m in host.members if m.name == "learner")
    assert learner.endpoint.last_error == "RuntimeError: after-reply broken on purpose"
