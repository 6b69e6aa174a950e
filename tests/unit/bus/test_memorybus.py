"""What only the in-memory bus has; its NATS semantics are in test_bus_contract.py."""

from __future__ import annotations

import pytest

from venom.daemon.bus.base import BusMessage
from venom.daemon.bus.memorybus import MemoryBus, subject_matches

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


async def test_handler_errors_and_published_messages_are_kept_for_tests() -> None:
    bus = MemoryBus()
    bus.record = True

    async def broken(msg: BusMessage) -> None:
        raise RuntimeError("broken on purpose")

    await bus.subscribe("s", broken)
    await bus.publish("s", b"1", headers={"K": "v"})
    await bus.flush()
    assert [str(e) for e in bus.handler_errors] == ["broken on purpose"]
    assert [(m.subject, m.data, m.headers) for m in bus.published] == [("s", b"1", {"K": "v"})]
    await bus.close()
