"""The :class:`Bus` contract, checked on MemoryBus and on a real nats-server.

Every test runs twice: on one :class:`MemoryBus` (three names for the same
bus) and on three :class:`NatsBus` connections to the session's nats-server.
What MemoryBus promises is what NATS does, so nothing here is memory-only;
memory-specific checks stay in ``test_memorybus.py``.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

import anyio
import pytest

from venom.daemon.bus.base import Bus, BusMessage, Handler, header, is_no_responders
from venom.daemon.bus.memorybus import MemoryBus
from venom.schemas import HDR_SERVICE_ERROR, HDR_SERVICE_ERROR_CODE, BusError

pytestmark = pytest.mark.anyio

#: Generous: a condition that holds at all holds well within this on a loaded machine.
DEADLINE = 30.0


@pytest.fixture
def prefix() -> str:
    """Subjects of this test alone (the nats-server is shared by the session)."""
    return f"contract.{uuid.uuid4().hex}"


async def wait_until(cond: Callable[[], bool]) -> None:
    with anyio.fail_after(DEADLINE):
        while not cond():
            await anyio.sleep(0.005)


def recorder(into: list[BusMessage]) -> Handler:
    async def handle(msg: BusMessage) -> None:
        into.append(msg)

    return handle


async def subscribed(*bs: Bus) -> None:
    """Make subscriptions made so far live on the server before anyone publishes."""
    for b in bs:
        await b.flush()


async def test_wildcards_star_one_token_and_gt_the_rest(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, sub, _ = buses
    patterns = ["a.b", "*.b", "a.*", ">", "*.*"]
    got: dict[str, list[BusMessage]] = {p: [] for p in patterns}
    for p in patterns:
        await sub.subscribe(f"{prefix}.{p}", recorder(got[p]))
    await subscribed(sub)
    # The last one matches every pattern: once it is in, so is all before it
    # (one publisher, one subscription: in order).
    sent = ["", "a", "a.c", "x.b", "a.c.b", "ab.b", "a.b"]
    for s in sent:
        await pub.publish(f"{prefix}.{s}" if s else prefix, s.encode())
    await wait_until(lambda: all(g and g[-1].data == b"a.b" for g in got.values()))
    await pub.flush()
    assert {p: [m.data.decode() for m in g] for p, g in got.items()} == {
        "a.b": ["a.b"],
        "*.b": ["x.b", "ab.b", "a.b"],
        "a.*": ["a.c", "a.b"],
        ">": ["a", "a.c", "x.b", "a.c.b", "ab.b", "a.b"],
        "*.*": ["a.c", "x.b", "ab.b", "a.b"],
    }
    assert got["a.b"][0].subject == f"{prefix}.a.b"


async def test_a_queue_group_gets_each_message_once_plain_subscribers_all(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, b1, b2 = buses
    members: list[list[BusMessage]] = [[], []]
    plain: list[list[BusMessage]] = [[], []]
    await b1.subscribe(prefix, recorder(members[0]), queue="workers")
    await b2.subscribe(prefix, recorder(members[1]), queue="workers")
    await b1.subscribe(prefix, recorder(plain[0]))
    await b2.subscribe(prefix, recorder(plain[1]))
    await subscribed(b1, b2)
    n = 50
    for i in range(n):
        await pub.publish(prefix, str(i).encode())
    await wait_until(lambda: all(len(p) == n for p in plain) and sum(map(len, members)) >= n)
    await pub.flush()
    for p in plain:
        assert [int(m.data) for m in p] == list(range(n))
    assert sorted(int(m.data) for m in itertools.chain(*members)) == list(range(n))
    # Spread over the members (round-robin here, at random on the server: one
    # member getting all 50 has odds of 2**-49).
    assert all(members)


async def test_a_queue_group_is_its_name_across_subjects(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, b1, b2 = buses
    got: list[BusMessage] = []
    await b1.subscribe(f"{prefix}.*", recorder(got), queue="g")
    await b2.subscribe(f"{prefix}.x", recorder(got), queue="g")
    await subscribed(b1, b2)
    for i in range(10):
        await pub.publish(f"{prefix}.x", str(i).encode())
    await wait_until(lambda: len(got) >= 10)
    await pub.flush()
    assert sorted(int(m.data) for m in got) == list(range(10))


async def test_one_publisher_in_order_one_handler_at_a_time(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, sub, _ = buses
    seen: list[int] = []
    active = 0
    overlapped = False

    async def slow(msg: BusMessage) -> None:
        nonlocal active, overlapped
        active += 1
        overlapped = overlapped or active > 1
        await anyio.sleep(0.001)
        seen.append(int(msg.data))
        active -= 1

    await sub.subscribe(prefix, slow)
    await subscribed(sub)
    n = 200
    for i in range(n):
        await pub.publish(prefix, str(i).encode())
    await wait_until(lambda: len(seen) >= n)
    assert seen == list(range(n))
    assert not overlapped


async def test_a_failing_handler_keeps_its_subscription(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, sub, _ = buses
    seen: list[bytes] = []

    async def picky(msg: BusMessage) -> None:
        seen.append(msg.data)
        if msg.data == b"bad":
            raise RuntimeError("broken on purpose")

    await sub.subscribe(prefix, picky)
    await subscribed(sub)
    for data in (b"bad", b"good"):
        await pub.publish(prefix, data)
    await wait_until(lambda: len(seen) >= 2)
    assert seen == [b"bad", b"good"]


async def test_request_reply_and_request_many(buses: tuple[Bus, Bus, Bus], prefix: str) -> None:
    client, s1, s2 = buses
    asked: list[BusMessage] = []

    def server(bus: Bus, name: str) -> Handler:
        async def handle(msg: BusMessage) -> None:
            asked.append(msg)
            await bus.respond(msg, msg.data.upper(), headers={"Server": name})

        return handle

    await s1.subscribe(prefix, server(s1, "one"))
    await s2.subscribe(prefix, server(s2, "two"))
    await subscribed(s1, s2)
    reply = await client.request(prefix, b"hi", timeout=DEADLINE, headers={"Asker": "me"})
    assert reply.data == b"HI"
    assert header(reply, "Server") in {"one", "two"}
    assert asked[0].reply
    assert asked[0].reply.startswith("_INBOX.")
    assert header(asked[0], "Asker") == "me"
    many = await client.request_many(prefix, b"yo", timeout=DEADLINE, max_replies=2)
    assert [m.data for m in many] == [b"YO", b"YO"]
    assert {header(m, "Server") for m in many} == {"one", "two"}


async def test_respond_error_carries_the_micro_error_headers(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    client, server, _ = buses

    async def refuse(msg: BusMessage) -> None:
        await server.respond_error(msg, 400, "bad\nrequest")

    await server.subscribe(prefix, refuse)
    await subscribed(server)
    reply = await client.request(prefix, b"", timeout=DEADLINE)
    assert reply.data == b""
    assert header(reply, HDR_SERVICE_ERROR) == "bad request"
    assert header(reply, HDR_SERVICE_ERROR_CODE) == "400"
    assert not is_no_responders(reply)


async def test_a_message_without_reply_gets_no_response(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, server, _ = buses
    got: list[BusMessage] = []

    async def handle(msg: BusMessage) -> None:
        got.append(msg)
        await server.respond(msg, b"ignored")  # no reply subject: nothing is sent
        await server.respond_error(msg, 500, "ignored")

    await server.subscribe(prefix, handle)
    await subscribed(server)
    await pub.publish(prefix, b"x")
    await wait_until(lambda: bool(got))
    assert got[0].reply == ""


async def test_a_request_nobody_serves_fails_with_bus_error(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    client, _, _ = buses
    with pytest.raises(BusError, match="no reply"):
        await client.request(f"{prefix}.nobody", b"", timeout=0.5)
    assert await client.request_many(f"{prefix}.nobody", b"", timeout=0.5) == []


async def test_the_no_responders_notice_reaches_the_reply_subject(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    client, _, _ = buses
    inbox = client.new_inbox()
    got: list[BusMessage] = []
    await client.subscribe(inbox, recorder(got))
    await subscribed(client)
    await client.publish(f"{prefix}.nobody", b"anyone?", reply=inbox)
    await wait_until(lambda: bool(got))
    assert got[0].subject == inbox
    assert is_no_responders(got[0])


async def test_inboxes_are_unique_reply_subjects(buses: tuple[Bus, Bus, Bus], prefix: str) -> None:
    pub, sub, _ = buses
    inboxes = {pub.new_inbox() for _ in range(100)} | {sub.new_inbox() for _ in range(100)}
    assert len(inboxes) == 200
    assert all(i.startswith("_INBOX.") and " " not in i for i in inboxes)
    inbox = pub.new_inbox()
    replies: list[BusMessage] = []
    await pub.subscribe(inbox, recorder(replies))

    async def echo(msg: BusMessage) -> None:
        await sub.publish(msg.reply, msg.data)

    await sub.subscribe(prefix, echo)
    await subscribed(pub, sub)
    await pub.publish(prefix, b"ping", reply=inbox)
    await wait_until(lambda: bool(replies))
    assert (replies[0].subject, replies[0].data, replies[0].reply) == (inbox, b"ping", "")


async def test_headers_round_trip_as_nats_py_delivers_them(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, sub, _ = buses
    got: list[BusMessage] = []
    await sub.subscribe(prefix, recorder(got))
    await subscribed(sub)
    sent: list[dict[str, str] | None] = [
        {"A": "1", "b-Two": "zwei", "Unicode": "grüße"},
        None,
        {},
        {" Padded ": "  value  ", "": "no name", "Lines": "one\r\ntwo"},
        {"Only-Empty": ""},
    ]
    for i, headers in enumerate(sent):
        await pub.publish(prefix, str(i).encode(), headers=headers)
    await wait_until(lambda: len(got) >= len(sent))
    assert [m.headers for m in got] == [
        {"A": "1", "b-Two": "zwei", "Unicode": "grüße"},
        None,
        None,
        {"Padded": "value", "Lines": "one  two"},
        {"Only-Empty": ""},
    ]
    assert header(got[0], "b-two") == "zwei"
    with pytest.raises(BusError):
        await pub.publish(prefix, b"", headers={"bad name": "x"})


async def test_subjects_nats_py_refuses(buses: tuple[Bus, Bus, Bus]) -> None:
    bus, _, _ = buses

    async def nothing(msg: BusMessage) -> None:
        pass

    for subject in ("", "a b", "a\r\nb"):
        with pytest.raises(BusError):
            await bus.publish(subject, b"")
    with pytest.raises(BusError):
        await bus.publish("ok", b"", reply="a b")
    for subject in ("", "a b", "a..b", "a.>.b", "a*", "a.b>", ".a"):
        with pytest.raises(BusError):
            await bus.subscribe(subject, nothing)
    with pytest.raises(BusError):
        await bus.subscribe("ok", nothing, queue="a b")
    # Publishing leaves token shape to the server: delivered nowhere, no error.
    await bus.publish("a..b", b"")


async def test_payloads_over_max_payload_are_refused(buses: tuple[Bus, Bus, Bus]) -> None:
    bus, _, _ = buses
    assert bus.max_payload > 0
    with pytest.raises(BusError):
        await bus.publish("big", b"x" * (bus.max_payload + 1))


async def test_unsubscribe_stops_delivery(buses: tuple[Bus, Bus, Bus], prefix: str) -> None:
    pub, sub, _ = buses
    gone: list[BusMessage] = []
    kept: list[BusMessage] = []
    s = await sub.subscribe(prefix, recorder(gone))
    await sub.subscribe(prefix, recorder(kept))
    await subscribed(sub)
    await pub.publish(prefix, b"1")
    await wait_until(lambda: len(gone) == 1 and len(kept) == 1)
    await s.unsubscribe()
    await subscribed(sub)
    await pub.publish(prefix, b"2")
    # The other subscription on the same connection got it: the server has
    # routed it, so the one unsubscribed would have it by now.
    await wait_until(lambda: len(kept) == 2)
    await sub.flush()
    assert [m.data for m in gone] == [b"1"]
    await s.unsubscribe()  # twice: nothing happens


async def test_unsubscribe_drops_what_the_handler_has_not_started(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, sub, _ = buses
    started: list[bytes] = []
    release = anyio.Event()
    marker: list[BusMessage] = []

    async def blocked(msg: BusMessage) -> None:
        started.append(msg.data)
        await release.wait()

    s = await sub.subscribe(f"{prefix}.work", blocked)
    await sub.subscribe(f"{prefix}.marker", recorder(marker))
    await subscribed(sub)
    for i in range(4):
        await pub.publish(f"{prefix}.work", str(i).encode())
    await pub.publish(f"{prefix}.marker", b"")
    # The marker came after them on the same connection: 1..3 are queued by now.
    await wait_until(lambda: bool(marker) and started == [b"0"])
    release.set()
    await s.unsubscribe()
    await sub.flush()
    assert started == [b"0"]


async def test_a_handler_can_unsubscribe_its_own_subscription(
    buses: tuple[Bus, Bus, Bus], prefix: str
) -> None:
    pub, sub, _ = buses
    got: list[BusMessage] = []
    kept: list[BusMessage] = []
    subs = []

    async def once(msg: BusMessage) -> None:
        got.append(msg)
        await subs[0].unsubscribe()

    subs.append(await sub.subscribe(prefix, once))
    await sub.subscribe(prefix, recorder(kept))
    await subscribed(sub)
    await pub.publish(prefix, b"1")
    await wait_until(lambda: len(kept) == 1 and len(got) == 1)
    await sub.flush()
    await pub.publish(prefix, b"2")
    await wait_until(lambda: len(kept) == 2)
    await sub.flush()
    assert [m.data for m in got] == [b"1"]
    if isinstance(sub, MemoryBus):
        assert sub.handler_errors == []


async def test_close_drains_then_refuses(buses: tuple[Bus, Bus, Bus], prefix: str) -> None:
    pub, sub, _ = buses
    handled: list[bytes] = []
    states: list[bool] = []

    async def on_state(connected: bool) -> None:
        states.append(connected)

    async def slow(msg: BusMessage) -> None:
        await anyio.sleep(0.01)
        handled.append(msg.data)

    sub.on_state(on_state)
    s = await sub.subscribe(prefix, slow)
    await subscribed(sub)
    for i in range(20):
        await pub.publish(prefix, str(i).encode())
    await pub.flush()
    await wait_until(lambda: bool(handled))
    assert sub.connected
    with anyio.fail_after(DEADLINE):
        await sub.close()
    assert handled == [str(i).encode() for i in range(20)]
    assert not sub.connected
    assert states == []  # closing is no connection loss
    with pytest.raises(BusError):
        await sub.publish(prefix, b"")
    with pytest.raises(BusError):
        await sub.subscribe(prefix, slow)
    await s.unsubscribe()  # after close: nothing happens
