"""The message bus the arbiter and plugins talk through.

:class:`Bus` is the interface; :class:`~venom.daemon.bus.natsbus.NatsBus` is the
real one (nats-py) and :class:`~venom.daemon.bus.memorybus.MemoryBus` routes
messages in-process for unit tests and plugin authors. Nothing else in venom
touches nats-py directly, except JetStream users through ``NatsBus``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple, Protocol

from venom.schemas import HDR_SERVICE_ERROR, HDR_SERVICE_ERROR_CODE


class BusMessage(Protocol):
    """A received message: nats-py's ``Msg`` fits as it is (no wrapper per message)."""

    subject: str
    data: bytes
    reply: str
    headers: dict[str, str] | None


class LocalMessage:
    """A :class:`BusMessage` made by venom (the memory bus, tests)."""

    __slots__ = ("data", "headers", "reply", "subject")

    def __init__(
        self,
        subject: str,
        data: bytes,
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.subject = subject
        self.data = data
        self.reply = reply
        self.headers = headers

    def __repr__(self) -> str:
        size = len(self.data)
        return f"LocalMessage(subject={self.subject!r}, reply={self.reply!r}, {size} bytes)"


def header(msg: BusMessage, key: str, default: str = "") -> str:
    """Header ``key`` of ``msg`` (exact case first, then case-insensitive)."""
    headers = msg.headers
    if not headers:
        return default
    value = headers.get(key)
    if value is not None:
        return value
    lowered = key.lower()
    for k, v in headers.items():
        if k.lower() == lowered:
            return v
    return default


Handler = Callable[[BusMessage], Awaitable[None]]


def is_no_responders(msg: BusMessage) -> bool:
    """The server's empty 503 "no responders" notice on a reply subject."""
    return not msg.data and header(msg, "Status") == "503"


StateCallback = Callable[[bool], Awaitable[None]]


class Subscription(Protocol):
    """A live subscription; ``unsubscribe`` stops delivery."""

    async def unsubscribe(self) -> None: ...


def error_headers(code: int, description: str) -> dict[str, str]:
    """NATS micro error headers (ADR-32) for an error reply."""
    return {
        HDR_SERVICE_ERROR: description.replace("\r", " ").replace("\n", " "),
        HDR_SERVICE_ERROR_CODE: str(code),
    }


class Bus(ABC):
    """Publish/subscribe/request over subjects with NATS semantics.

    Handlers of one subscription run one at a time, in arrival order, as
    with nats-py callbacks. Queue groups deliver each message to one member.
    """

    #: Largest payload the bus accepts on publish.
    max_payload: int = 1024 * 1024
    #: The last permission violation the server reported ("" when none): a
    #: subscription it refused is otherwise just silence.
    refused: str = ""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """Whether the bus can deliver right now."""

    @abstractmethod
    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        reply: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish ``data`` on ``subject``."""

    @abstractmethod
    async def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> Subscription:
        """Deliver messages on ``subject`` (wildcards allowed) to ``handler``."""

    @abstractmethod
    def new_inbox(self) -> str:
        """A unique subject for replies."""

    @abstractmethod
    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything published so far has reached the server."""

    @abstractmethod
    async def close(self) -> None:
        """Drain subscriptions and pending publishes, then close."""

    @abstractmethod
    def on_state(self, callback: StateCallback) -> None:
        """Call ``callback(connected)`` whenever the connection goes down or up."""

    def jetstream(self) -> JetStream:
        """The server's JetStream; BusError where there is none (the memory bus)."""
        from venom.schemas import BusError

        raise BusError(f"{type(self).__name__} has no JetStream: it needs a NATS server")

    async def request(
        self,
        subject: str,
        data: bytes,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> BusMessage:
        """Send a request and return the first reply; BusError on timeout."""
        replies = await self.request_many(
            subject, data, timeout=timeout, max_replies=1, headers=headers
        )
        if not replies:
            from venom.schemas import BusError

            raise BusError(f"no reply on {subject} within {timeout:g} s")
        return replies[0]

    async def request_many(
        self,
        subject: str,
        data: bytes,
        *,
        timeout: float,
        max_replies: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> list[BusMessage]:
        """Scatter a request and gather replies until ``timeout`` (or ``max_replies``)."""
        import anyio

        inbox = self.new_inbox()
        got: list[BusMessage] = []
        done = anyio.Event()

        async def collect(msg: BusMessage) -> None:
            if is_no_responders(msg):
                # Not an answer. nats-server can send it while responders on other
                # connections are being registered, so keep waiting for the timeout.
                return
            got.append(msg)
            if max_replies and len(got) >= max_replies:
                done.set()

        sub = await self.subscribe(inbox, collect)
        try:
            await self.publish(subject, data, reply=inbox, headers=headers)
            with anyio.move_on_after(timeout):
                await done.wait()
        finally:
            await sub.unsubscribe()
        return got

    async def respond(
        self, msg: BusMessage, data: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Reply to ``msg`` if it asked for a reply."""
        if msg.reply:
            await self.publish(msg.reply, data, headers=headers)

    async def respond_error(self, msg: BusMessage, code: int, description: str) -> None:
        """Reply with an empty body and NATS micro error headers."""
        if msg.reply:
            await self.publish(msg.reply, b"", headers=error_headers(code, description))


class PullConsumer(ABC):
    """A durable pull consumer on a stream: one long pull request kept outstanding.

    Records arrive in stream order; :meth:`ack` of a record acks it and every
    record before it (one ack per group commit).
    """

    @abstractmethod
    async def top_up(self) -> None:
        """Ask for more records unless the requests out there still cover half a batch."""

    @abstractmethod
    async def first(self, timeout: float) -> BusMessage | None:
        """The next message (a record or a status) within ``timeout``, else None."""

    @abstractmethod
    def arrived(self) -> list[BusMessage]:
        """Every message already received, without waiting."""

    @abstractmethod
    def status(self, msg: BusMessage) -> str | None:
        """None for a record; for a status message (a request ended), its status code."""

    @abstractmethod
    def sequence(self, msg: BusMessage) -> int:
        """The stream sequence of a record."""

    @abstractmethod
    async def ack(self, msg: BusMessage) -> None:
        """Ack ``msg`` and every record delivered before it; BusError when cut off."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving (the consumer stays on the server)."""


class StoredMessage(NamedTuple):
    """A message as a stream holds it."""

    seq: int
    subject: str
    data: bytes
    headers: Mapping[str, str]


class JetStream(ABC):
    """The streams and consumers venom needs from a JetStream server."""

    @abstractmethod
    async def last_sequence(self, stream: str) -> int:
        """The stream's last sequence (it stays when messages are purged)."""

    @abstractmethod
    async def last_message(self, stream: str, subject: str) -> StoredMessage | None:
        """The last message the stream holds on ``subject``; None when there is none."""

    @abstractmethod
    async def message(self, stream: str, seq: int) -> StoredMessage | None:
        """The message at ``seq``; None when the stream does not hold it."""

    @abstractmethod
    async def put_entry(
        self, bucket: str, key: str, value: bytes, *, ttl: float, history: int = 1
    ) -> None:
        """Put ``key`` in KV bucket ``bucket`` (made if missing), gone after ``ttl`` seconds."""

    @abstractmethod
    async def ensure_stream(
        self, name: str, subjects: list[str], *, replicas: int, duplicate_window: float
    ) -> bool:
        """Create stream ``name`` (file storage) unless it exists; True when created."""

    @abstractmethod
    async def pull_consumer(
        self, stream: str, durable: str, *, after: int, batch: int
    ) -> PullConsumer:
        """(Re)create the durable consumer ``durable`` from stream sequence ``after + 1``.

        ``after`` = 0 delivers the stream from its start; ``batch`` is the
        size of each pull request.
        """
