"""The ledger's consumer: JetStream ``VENOM_BEATS`` → the Merkle log (SPEC 6).

A durable pull consumer with explicit acks. Each record is appended with
its stream sequence; an entry is acked only after it is durable (fsync per
entry, or group commit: fsync once per ``group_ms`` window, then ack the
whole window). A record redelivered after a crash has a sequence the log
already holds: it is acked and skipped, so every beat is appended exactly
once. The head (size, root, time) is published every ``head_interval``.

Pulling: one long pull request of ``batch`` records is kept outstanding
(:class:`_Puller`) and renewed when less than half of it is left, so the
server pushes records as they are stored and the writer only collects what
has arrived once per window: one pull request per ``batch / 2`` records
instead of one (and its status reply) per fetch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Annotated, Literal

import anyio
import anyio.lowlevel
import msgspec
from msgspec import Meta
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DEFAULT_PREFIX, AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry.trace import SpanKind, TracerProvider

from venom.daemon.beatstream import ensure_stream
from venom.daemon.tracing import SYSTEM, ConsumerTrace, end_span
from venom.plugins.ledger.entry import GENESIS, canonical_record, make_entry, parse_entry
from venom.plugins.ledger.store import LedgerStore
from venom.schemas import BeatRecord, Codec, LedgerHead, SchemaError, Subjects

log = logging.getLogger("venom.ledger")


class LedgerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[plugins.settings.ledger]``."""

    fsync: Literal["always", "group"] = "group"
    group_ms: Annotated[float, Meta(gt=0)] = 20.0
    batch: Annotated[int, Meta(ge=1)] = 256
    checkpoint_every: Annotated[int, Meta(ge=1)] = 1000
    checkpoint_seconds: Annotated[float, Meta(gt=0)] = 5.0
    head_interval: Annotated[float, Meta(gt=0)] = 1.0
    durable: str = "venom-ledger"
    replicas: Annotated[int, Meta(ge=1, le=5)] = 1


#: How long one pull request lasts (the server ends it with a 408 status).
PULL_EXPIRES = 2.0
_STATUS = "Status"
_PENDING_MESSAGES = "Nats-Pending-Messages"


def _stream_seq(reply: str) -> int:
    """The stream sequence in a JetStream ack subject (what ``msg.metadata`` parses, only it)."""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5])
    return int(tokens[Msg.Ack.StreamSeq])  # with domain and account hash


def _is_status(msg: Msg) -> bool:
    headers = msg.headers
    return headers is not None and _STATUS in headers


class _Puller:
    """Keeps one pull request on the durable consumer outstanding, renewed before it runs dry.

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
        self.sub = await self.nc.subscribe(self.inbox)

    async def top_up(self) -> None:
        """Send a pull request unless the ones out there cover more than half a batch."""
        now = time.monotonic()
        reconnects = self._reconnects()
        if reconnects != self.reconnects or now > self.until + 1.0:
            self.reconnects = reconnects
            self.credit = 0
        if self.credit > self.batch // 2:
            return
        await self.nc.publish(self.subject, self.request, reply=self.inbox)
        self.credit += self.batch
        self.until = now + PULL_EXPIRES

    async def first(self, timeout: float) -> Msg | None:
        """The next message (a record or a status) within ``timeout``, else None."""
        assert self.sub is not None
        try:
            return await self.sub.next_msg(timeout=timeout)
        except NatsTimeout:
            return None

    def arrived(self) -> list[Msg]:
        """Every message already received, without waiting."""
        assert self.sub is not None
        # nats-py's own fetch drains its pull inbox the same way.
        queue = self.sub._pending_queue
        msgs: list[Msg] = []
        while not queue.empty():
            msg = queue.get_nowait()
            queue.task_done()
            self.sub._pending_size -= len(msg.data)
            msgs.append(msg)
        return msgs

    def status(self, msg: Msg) -> str | None:
        """None for a record; for a status message (a request ended), account for it."""
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status is None:
            self.credit = max(0, self.credit - 1)
            return None
        if status != "100":  # 100: a heartbeat; anything else ends a request
            left = headers.get(_PENDING_MESSAGES) if headers else None
            self.credit = max(0, self.credit - int(left)) if left and left.isdigit() else 0
        return status

    async def stop(self) -> None:
        if self.sub is not None:
            await self.sub.unsubscribe()


class LedgerWriter:
    """Moves records from the stream into a :class:`LedgerStore`."""

    def __init__(
        self,
        nc: Client,
        subjects: Subjects,
        store: LedgerStore,
        config: LedgerConfig,
        codec: Codec | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.nc = nc
        self.subjects = subjects
        self.store = store
        self.config = config
        self.codec = codec or Codec(max_bytes=16 * 1024 * 1024)
        self.last_seq = 0
        self.last_beat = 0
        self.prev = GENESIS
        self.appended = 0
        self.duplicates = 0
        self.rejected = 0
        self.disconnects = 0
        self._stopping = False
        self.caught_up = anyio.Event()
        if store.size:
            last = parse_entry(store.read(store.size - 1), store.size - 1)
            self.last_seq, self.last_beat = last.seq, last.record.beat
            self.prev = store.tree.levels[0][-1]
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._last_head = 0.0
        # `ledger append`, a span of the beat's trace (SPEC 6, 7): the record
        # comes with its beat's root span in `traceparent`.
        self._trace = ConsumerTrace(
            tracer_provider,
            "ledger append",
            {
                **SYSTEM,
                "messaging.destination.name": subjects.beat,
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": config.durable,
            },
            kind=SpanKind.CONSUMER,
        )

    def stop(self) -> None:
        """Finish what the stream holds, then return from :meth:`run`."""
        self._stopping = True

    async def run(self) -> None:
        js = self.nc.jetstream()
        stream = await ensure_stream(js, self.subjects, replicas=self.config.replicas)
        # The log, not the consumer, knows what is stored: start the durable consumer
        # right after the last stored sequence, so a record that was appended but
        # not acked before a crash is never overtaken by later ones (no gaps).
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, self.config.durable)
        config = ConsumerConfig(
            durable_name=self.config.durable,
            # One ack per group commit, for every record up to it (what is acked is on disk).
            ack_policy=AckPolicy.ALL,
            ack_wait=30.0,
            max_ack_pending=65536,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if self.last_seq else DeliverPolicy.ALL,
            opt_start_seq=self.last_seq + 1 if self.last_seq else None,
        )
        await js.add_consumer(stream, config)
        puller = _Puller(self.nc, stream, self.config.durable, self.config.batch)
        await puller.start()
        window = self.config.group_ms / 1000 if self.config.fsync == "group" else 0.0
        try:
            while True:
                pending: list[Msg] = []
                last: Msg | None = None  # the last record of this round, taken or not
                deadline = time.monotonic() + window
                try:
                    await puller.top_up()
                    first = await puller.first(0.5)
                    if first is not None and not _is_status(first) and window:
                        # Group commit: let the window fill, then take what came.
                        await anyio.sleep(max(0.0, deadline - time.monotonic()))
                    msgs = [first, *puller.arrived()] if first is not None else []
                except NatsError as exc:  # cut off from the server: it reconnects
                    self._cut_off(exc)
                    await anyio.sleep(0.25)
                    msgs = []
                trouble = None
                for i, msg in enumerate(msgs):
                    if i:
                        # One record at a time: a pulse for plugins sharing this
                        # process (and the ledger's own reply) gets in between.
                        await anyio.lowlevel.checkpoint()
                    status = puller.status(msg)
                    if status is None:
                        if self._take(msg):
                            pending.append(msg)
                        last = msg
                    elif status not in ("100", "404", "408"):
                        why = (msg.headers or {}).get("Description", "")
                        trouble = f"pull request ended: {status} {why}"
                if pending:
                    # Durable first (off the event loop: a slow disk must not hold
                    # the ledger's pulse replies) ...
                    await anyio.to_thread.run_sync(self.store.sync)
                if last is not None:
                    await self._ack(last)  # ... then acked, all of them with the last
                if trouble is not None:  # e.g. the consumer is gone: as if cut off
                    self._cut_off(NatsError(trouble))
                    await anyio.sleep(0.25)
                if not pending and not self.caught_up.is_set() and not msgs:
                    self.caught_up.set()
                await self._housekeeping()
                if self._stopping and not pending:
                    break
        finally:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(NatsError):
                    await puller.stop()

    async def _ack(self, msg: Msg) -> None:
        """Ack ``msg``; if the connection is down the stream redelivers it, and it is skipped."""
        try:
            await msg.ack()
        except NatsError as exc:
            self._cut_off(exc)

    def _cut_off(self, exc: Exception) -> None:
        self.disconnects += 1
        if self.disconnects == 1 or self.disconnects % 100 == 0:
            log.warning("beat stream unreachable (%s); waiting for the connection", exc)

    def _take(self, msg: Msg) -> bool:
        """Append ``msg`` if new; False for a duplicate or a record we cannot read."""
        seq = _stream_seq(msg.reply)
        if seq <= self.last_seq:
            self.duplicates += 1
            return False
        if self.last_seq and seq != self.last_seq + 1:
            log.warning(
                "stream sequence jumps from %d to %d: records %d..%d are not in the stream",
                self.last_seq,
                seq,
                self.last_seq + 1,
                seq - 1,
            )
        try:
            record = self.codec.decode(BeatRecord, msg.data)
            body = canonical_record(record, self.codec)
        except SchemaError as exc:
            self.rejected += 1
            log.error("stream message %d is not a beat record, not appended: %s", seq, exc)
            self.last_seq = seq
            return False
        span = self._trace.start(msg.headers, record.beat)
        index = self.store.append(make_entry(body, self.prev, seq))
        if span is not None:
            span.set_attribute("venom.ledger.index", index)
            end_span(span)
        self.prev = self.store.tree.levels[0][index]
        self.last_seq, self.last_beat = seq, record.beat
        self.appended += 1
        self._since_checkpoint += 1
        return True

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if self._since_checkpoint and (
            self._since_checkpoint >= self.config.checkpoint_every
            or now - self._last_checkpoint >= self.config.checkpoint_seconds
        ):
            await anyio.to_thread.run_sync(self.store.checkpoint)
            self._since_checkpoint = 0
            self._last_checkpoint = now
        if now - self._last_head >= self.config.head_interval:
            self._last_head = now
            head = LedgerHead(
                size=self.store.size, root=self.store.tree.root().hex(), time=time.time()
            )
            try:
                await self.nc.publish(self.subjects.ledger_head, self.codec.encode(head))
            except NatsError as exc:
                self._cut_off(exc)
