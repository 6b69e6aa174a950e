"""An in-process :class:`Bus` with NATS subject semantics, for tests.

Wildcards (``*`` one token, ``>`` the rest), queue groups (one member per
message, round-robin) and per-subscription ordered delivery behave as on a
nats-server, so code tested here behaves the same on the real bus.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping

from venom.daemon.bus import Bus, BusMessage, Handler, Message, StateCallback
from venom.schemas import BusError

_inbox_ids = itertools.count()


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching of ``subject`` against ``pattern``."""
    pt = pattern.split(".")
    st = subject.split(".")
    for i, token in enumerate(pt):
        if token == ">":
            return len(st) > i
        if i >= len(st):
            return False
        if token != "*" and token != st[i]:
            return False
    return len(pt) == len(st)


class _MemorySubscription:
    def __init__(self, bus: MemoryBus, subject: str, queue: str, handler: Handler) -> None:
        self.bus = bus
        self.subject = subject
        self.queue = queue
        self.handler = handler
        self.exact = "*" not in subject and ">" not in subject
        self.inbox: asyncio.Queue[BusMessage | None] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        while True:
            msg = await self.inbox.get()
            if msg is None:
                return
            try:
                await self.handler(msg)
            except Exception as exc:  # a handler error must not kill delivery
                self.bus.handler_errors.append(exc)

    async def unsubscribe(self) -> None:
        if self in self.bus._subs:
            self.bus._subs.remove(self)
            self.inbox.put_nowait(None)
            await self.task


class MemoryBus(Bus):
    """Routes published messages to matching subscriptions in this process."""

    def __init__(self, *, max_payload: int = 1024 * 1024) -> None:
        self.max_payload = max_payload
        self._subs: list[_MemorySubscription] = []
        self._rr = itertools.count()
        self._closed = False
        self._state_callbacks: list[StateCallback] = []
        #: Exceptions raised by handlers (a real server would just drop them).
        self.handler_errors: list[BaseException] = []
        #: Every published message, in order (handy in tests).
        self.published: list[BusMessage] = []
        self.record = False

    @property
    def connected(self) -> bool:
        return not self._closed

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if self._closed:
            raise BusError("memory bus is closed")
        if len(data) > self.max_payload:
            raise BusError(f"payload of {len(data)} bytes exceeds max_payload {self.max_payload}")
        msg = Message(subject, bytes(data), reply, dict(headers) if headers else None)
        if self.record:
            self.published.append(msg)
        groups: dict[str, list[_MemorySubscription]] = {}
        for sub in self._subs:
            if sub.subject == subject if sub.exact else subject_matches(sub.subject, subject):
                if sub.queue:
                    groups.setdefault(sub.queue, []).append(sub)
                else:
                    sub.inbox.put_nowait(msg)
        for members in groups.values():
            members[next(self._rr) % len(members)].inbox.put_nowait(msg)

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = ""
    ) -> _MemorySubscription:
        if self._closed:
            raise BusError("memory bus is closed")
        sub = _MemorySubscription(self, subject, queue, handler)
        self._subs.append(sub)
        return sub

    def new_inbox(self) -> str:
        return f"_INBOX.mem.{next(_inbox_ids)}"

    async def flush(self, timeout: float = 5.0) -> None:
        # Let every queued delivery run to completion.
        for _ in range(3):
            await asyncio.sleep(0)
            while any(not s.inbox.empty() for s in self._subs):  # noqa: ASYNC110
                await asyncio.sleep(0)

    async def close(self) -> None:
        for sub in list(self._subs):
            await sub.unsubscribe()
        self._closed = True

    def on_state(self, callback: StateCallback) -> None:
        self._state_callbacks.append(callback)
