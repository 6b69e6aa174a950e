"""An in-process :class:`Bus` with NATS subject semantics, for tests.

Wildcards (``*`` one token, ``>`` the rest), queue groups (one member per
message, round-robin), per-subscription ordered delivery, the "no responders"
notice (an empty ``Status: 503`` message on the reply subject of a request
nobody received), header normalisation and subject validation behave as on a
nats-server with nats-py, so code tested here behaves the same on the real bus
(``tests/unit/bus/test_bus_contract.py`` runs the same checks against both).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Mapping

from venom.daemon.bus.base import Bus, BusMessage, Handler, LocalMessage, StateCallback
from venom.schemas import BusError

_inbox_ids = itertools.count()

# What nats-py accepts: subjects without whitespace; header names that are
# RFC 7230 tokens; header values trimmed, CR/LF turned into spaces.
_WHITESPACE = re.compile(r"[ \t\r\n]")
_HEADER_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


def _check_subject(subject: str, *, subscribe: bool = False) -> None:
    """BusError for a subject nats-py refuses (a subscription's strictly: tokens, wildcards)."""
    if not subject or _WHITESPACE.search(subject):
        raise BusError(f"invalid subject {subject!r}")
    if not subscribe:
        return
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token or (token != ">" and ">" in token) or (token != "*" and "*" in token):
            raise BusError(f"invalid subject {subject!r}")
        if token == ">" and i != len(tokens) - 1:
            raise BusError(f"invalid subject {subject!r}")


def _headers(headers: Mapping[str, str] | None) -> dict[str, str] | None:
    """``headers`` as a subscriber on nats-py receives them (None when none are left)."""
    if not headers:
        return None
    out: dict[str, str] = {}
    for k, v in headers.items():
        key = k.strip()
        if not key:
            continue
        if not _HEADER_KEY.fullmatch(key):
            raise BusError(f"invalid header: {key!r}")
        out[key] = v.strip().translate(_NEWLINES)
    return out or None


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
        """Stop delivery; messages not yet handed to the handler are dropped, as with nats-py.

        A handler that is running finishes first, unless it is the one unsubscribing.
        """
        await self.stop(drain=False)

    async def stop(self, *, drain: bool) -> None:
        """Remove the subscription; ``drain``: deliver what is queued first (close)."""
        if self not in self.bus._subs:
            return
        self.bus._subs.remove(self)
        if not drain:
            while not self.inbox.empty():
                self.inbox.get_nowait()
        self.inbox.put_nowait(None)
        if asyncio.current_task() is not self.task:
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
        _check_subject(subject)
        if reply and _WHITESPACE.search(reply):
            raise BusError(f"invalid reply subject {reply!r}")
        if self._closed:
            raise BusError("memory bus is closed")
        if len(data) > self.max_payload:
            raise BusError(f"payload of {len(data)} bytes exceeds max_payload {self.max_payload}")
        msg = LocalMessage(subject, bytes(data), reply, _headers(headers))
        if self.record:
            self.published.append(msg)
        delivered = False
        # As on nats-server, a queue group is its name, whatever subjects its members
        # subscribe to: one member of all the matching ones gets the message.
        groups: dict[str, list[_MemorySubscription]] = {}
        for sub in self._subs:
            if sub.subject == subject if sub.exact else subject_matches(sub.subject, subject):
                delivered = True
                if sub.queue:
                    groups.setdefault(sub.queue, []).append(sub)
                else:
                    sub.inbox.put_nowait(msg)
        for members in groups.values():
            members[next(self._rr) % len(members)].inbox.put_nowait(msg)
        if reply and not delivered:
            self._no_responders(subject, reply)

    def _no_responders(self, subject: str, reply: str) -> None:
        """The server's notice for a request nobody received: to one subscription on ``reply``."""
        for sub in self._subs:
            if subject_matches(sub.subject, reply):
                notice = LocalMessage(reply, b"", "", {"Status": "503", "Nats-Subject": subject})
                sub.inbox.put_nowait(notice)
                return

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = ""
    ) -> _MemorySubscription:
        _check_subject(subject, subscribe=True)
        if queue and _WHITESPACE.search(queue):
            raise BusError(f"invalid queue group {queue!r}")
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
            await sub.stop(drain=True)
        self._closed = True

    def on_state(self, callback: StateCallback) -> None:
        self._state_callbacks.append(callback)
