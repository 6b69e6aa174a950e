"""JetStream on nats-py: the streams and the pull consumer of :mod:`venom.daemon.bus.base`.

The second and last module that imports nats-py (after ``natsbus``); its
errors become :class:`BusError` here. The pull consumer keeps one long pull
request of ``batch`` records outstanding and renews it when less than half
of it is left, so the server pushes records as they are stored and the
reader collects what has arrived: one pull request per ``batch / 2``
records instead of one (and its status reply) per fetch.
"""

from __future__ import annotations

import contextlib
import time

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import (
    DEFAULT_PREFIX,
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import Error as JsError
from nats.js.errors import NotFoundError

from venom.daemon.bus.base import BusMessage, JetStream, PullConsumer, StoredMessage
from venom.schemas import BusError

#: How long one pull request lasts (the server ends it with a 408 status).
PULL_EXPIRES = 2.0
_STATUS = "Status"
_PENDING_MESSAGES = "Nats-Pending-Messages"
_ACK = b"+ACK"


def _why(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


class NatsJetStream(JetStream):
    """JetStream through one nats-py connection."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._buckets: set[str] = set()

    async def last_sequence(self, stream: str) -> int:
        try:
            info = await self._js.stream_info(stream)
        except (JsError, NatsError) as exc:
            raise BusError(f"cannot read the state of stream {stream}: {_why(exc)}") from exc
        return int(info.state.last_seq or 0)

    async def last_message(self, stream: str, subject: str) -> StoredMessage | None:
        return await self._get(stream, subject=subject)

    async def message(self, stream: str, seq: int) -> StoredMessage | None:
        return await self._get(stream, seq=seq)

    async def _get(
        self, stream: str, *, seq: int | None = None, subject: str | None = None
    ) -> StoredMessage | None:
        try:
            raw = await self._js.get_msg(stream, seq=seq, subject=subject)
        except NotFoundError:
            return None
        except (JsError, NatsError) as exc:
            what = f"message {seq}" if seq is not None else f"the last message on {subject}"
            raise BusError(f"cannot read {what} of stream {stream}: {_why(exc)}") from exc
        return StoredMessage(
            seq=int(raw.seq or 0),
            subject=raw.subject or "",
            data=raw.data or b"",
            headers=dict(raw.headers or {}),
        )

    async def put_entry(
        self, bucket: str, key: str, value: bytes, *, ttl: float, history: int = 1
    ) -> None:
        try:
            if bucket not in self._buckets:
                await self._bucket(bucket, history)
                self._buckets.add(bucket)
            await self._js.publish(f"$KV.{bucket}.{key}", value, msg_ttl=ttl)
        except (JsError, NatsError) as exc:
            raise BusError(f"cannot put {key} in KV bucket {bucket}: {_why(exc)}") from exc

    async def _bucket(self, bucket: str, history: int) -> None:
        """The KV bucket's stream, with per-message TTLs allowed (nats-server >= 2.11)."""
        try:
            await self._js.stream_info(f"KV_{bucket}")
            return
        except NotFoundError:
            pass
        await self._js.add_stream(
            StreamConfig(
                name=f"KV_{bucket}",
                subjects=[f"$KV.{bucket}.>"],
                storage=StorageType.FILE,
                max_msgs_per_subject=history,
                allow_rollup_hdrs=True,
                deny_delete=True,
                allow_direct=True,
                allow_msg_ttl=True,
            )
        )

    async def ensure_stream(
        self, name: str, subjects: list[str], *, replicas: int, duplicate_window: float
    ) -> bool:
        try:
            await self._js.stream_info(name)
            return False
        except NotFoundError:
            pass
        except (JsError, NatsError) as exc:
            raise BusError(f"cannot look up JetStream stream {name}: {_why(exc)}") from exc
        config = StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=duplicate_window,
        )
        try:
            await self._js.add_stream(config)
        except (JsError, NatsError) as exc:
            raise BusError(f"cannot create JetStream stream {name}: {_why(exc)}") from exc
        return True

    async def pull_consumer(
        self, stream: str, durable: str, *, after: int, batch: int
    ) -> PullConsumer:
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.ALL,
            ack_wait=30.0,
            max_ack_pending=65536,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
            opt_start_seq=after + 1 if after else None,
        )
        try:
            with contextlib.suppress(NotFoundError):
                await self._js.delete_consumer(stream, durable)
            await self._js.add_consumer(stream, config)
        except (JsError, NatsError) as exc:
            raise BusError(f"cannot create consumer {durable} on {stream}: {_why(exc)}") from exc
        consumer = NatsPullConsumer(self._nc, stream, durable, batch)
        await consumer.start()
        return consumer


class NatsPullConsumer(PullConsumer):
    """Keeps one pull request on a durable consumer outstanding, renewed before it runs dry.

    ``credit`` is what the requests sent may still deliver; a request ends
    with its batch delivered or with a status (408 when it expires, with the
    count it did not deliver). Requests die with the connection, so a
    reconnect, or a request past its expiry with no word from the server,
    clears the credit and a new one is sent.
    """

    def __init__(self, nc: Client, stream: str, durable: str, batch: int) -> None:
        self.nc = nc
        self.subject = f"{DEFAULT_PREFIX}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.batch = batch
        self.request = msgspec.json.encode(
            {"batch": batch, "expires": int(PULL_EXPIRES * 1_000_000_000)}
        )
        self.credit = 0
        self.until = 0.0
        self.reconnects = self._reconnects()
        self.inbox = nc.new_inbox()
        self.sub: Subscription | None = None

    def _reconnects(self) -> int:
        return int(self.nc.stats["reconnects"])

    async def start(self) -> None:
        try:
            self.sub = await self.nc.subscribe(self.inbox)
        except NatsError as exc:
            raise BusError(f"subscribe to {self.inbox} failed: {_why(exc)}") from exc

    async def top_up(self) -> None:
        now = time.monotonic()
        reconnects = self._reconnects()
        if reconnects != self.reconnects or now > self.until + 1.0:
            self.reconnects = reconnects
            self.credit = 0
        if self.credit > self.batch // 2:
            return
        try:
            await self.nc.publish(self.subject, self.request, reply=self.inbox)
        except NatsError as exc:
            raise BusError(f"pull request on {self.subject} failed: {_why(exc)}") from exc
        self.credit += self.batch
        self.until = now + PULL_EXPIRES

    async def first(self, timeout: float) -> BusMessage | None:
        assert self.sub is not None
        try:
            return await self.sub.next_msg(timeout=timeout)
        except NatsTimeout:
            return None
        except NatsError as exc:
            raise BusError(f"pull consumer {self.subject}: {_why(exc)}") from exc

    def arrived(self) -> list[BusMessage]:
        assert self.sub is not None
        # nats-py's own fetch drains its pull inbox the same way.
        queue = self.sub._pending_queue
        msgs: list[BusMessage] = []
        while not queue.empty():
            msg = queue.get_nowait()
            queue.task_done()
            self.sub._pending_size -= len(msg.data)
            msgs.append(msg)
        return msgs

    def status(self, msg: BusMessage) -> str | None:
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is None:
            self.credit = max(0, self.credit - 1)
            return None
        if status != "100":  # 100: a heartbeat; anything else ends a request
            left = headers.get(_PENDING_MESSAGES) if headers else None
            self.credit = max(0, self.credit - int(left)) if left and left.isdigit() else 0
        return status

    def sequence(self, msg: BusMessage) -> int:
        """The stream sequence in the ack subject (what ``Msg.metadata`` parses, only it)."""
        tokens = msg.reply.split(".")
        if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
            return int(tokens[5])
        return int(tokens[Msg.Ack.StreamSeq])  # with domain and account hash

    async def ack(self, msg: BusMessage) -> None:
        try:
            await self.nc.publish(msg.reply, _ACK)
        except NatsError as exc:
            raise BusError(f"ack of stream record failed: {_why(exc)}") from exc

    async def stop(self) -> None:
        if self.sub is not None:
            sub, self.sub = self.sub, None
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
