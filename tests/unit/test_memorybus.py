"""The in-memory bus behaves like a nats-server for what venom uses."""

from __future__ import annotations

import anyio
import pytest

from venom.daemon.bus import BusMessage
from venom.daemon.memorybus import MemoryBus, subject_matches

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        ("*.b", "a.b", True),
        ("a.b", "a.c", False),
        ("$SRV.PING", "$SRV.PING", True),
    ],
)
def test_subject_matching(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


async def test_queue_groups_deliver_once_and_plain_subscribers_all() -> None:
    bus = MemoryBus()
    got: dict[str, int] = {"q1": 0, "q2": 0, "plain": 0}

    def counter(key: str):  # type: ignore[no-untyped-def]
        async def handle(msg: BusMessage) -> None:
            got[key] += 1

        return handle

    await bus.subscribe("x", counter("q1"), queue="g")
    await bus.subscribe("x", counter("q2"), queue="g")
    await bus.subscribe("x", counter("plain"))
    for _ in range(10):
        await bus.publish("x", b"")
    await bus.flush()
    assert got["q1"] + got["q2"] == 10
    assert got["plain"] == 10
    await bus.close()


async def test_request_and_request_many() -> None:
    bus = MemoryBus()

    async def echo(msg: BusMessage) -> None:
        await bus.respond(msg, msg.data.upper())

    await bus.subscribe("svc", echo)
    await bus.subscribe("svc", echo)
    reply = await bus.request("svc", b"hi", timeout=1)
    assert reply.data == b"HI"
    many = await bus.request_many("svc", b"yo", timeout=0.05)
    assert [m.data for m in many] == [b"YO", b"YO"]
    await bus.close()


async def test_handlers_of_one_subscription_run_in_order_one_at_a_time() -> None:
    bus = MemoryBus()
    seen: list[int] = []
    active = 0

    async def slow(msg: BusMessage) -> None:
        nonlocal active
        active += 1
        assert active == 1
        await anyio.sleep(0.001)
        seen.append(int(msg.data))
        active -= 1

    await bus.subscribe("s", slow)
    for i in range(5):
        await bus.publish("s", str(i).encode())
    with anyio.fail_after(2):
        while len(seen) < 5:
            await anyio.sleep(0.001)
    assert seen == [0, 1, 2, 3, 4]
    await bus.close()
