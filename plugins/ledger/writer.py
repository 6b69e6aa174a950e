"""The ledger's consumer: JetStream ``VENOM_BEATS`` → the Merkle log (SPEC 6).

A durable pull consumer with explicit acks. Each record is appended with
its stream sequence; an entry is acked only after it is durable (fsync per
entry, or group commit: fsync once per ``group_ms`` window, then ack the
whole window). A record redelivered after a crash has a sequence the log
already holds: it is acked and skipped, so every beat is appended exactly
once. The head (size, root, time) is published every ``head_interval``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Annotated, Any, Literal

import anyio
import msgspec
from msgspec import Meta
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
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
        sub = await js.pull_subscribe(
            self.subjects.beat, durable=self.config.durable, stream=stream, config=config
        )
        window = self.config.group_ms / 1000 if self.config.fsync == "group" else 0.0
        try:
            while True:
                pending: list[Any] = []
                last: Any = None  # the last message of this round, taken or not
                deadline = time.monotonic() + window
                while True:
                    timeout = max(0.05, deadline - time.monotonic()) if pending else 0.5
                    try:
                        msgs = await sub.fetch(self.config.batch, timeout=timeout)
                    except (NatsTimeout, TimeoutError):
                        msgs = []
                    except NatsError as exc:  # cut off from the server: it reconnects
                        self._cut_off(exc)
                        await anyio.sleep(0.25)
                        msgs = []
                    for msg in msgs:
                        if self._take(msg):
                            pending.append(msg)
                        last = msg
                    if self.config.fsync == "always" and pending:
                        break
                    if not msgs or time.monotonic() >= deadline:
                        break
                if pending:
                    # Durable first (off the event loop: a slow disk must not hold
                    # the ledger's pulse replies) ...
                    await anyio.to_thread.run_sync(self.store.sync)
                if last is not None:
                    await self._ack(last)  # ... then acked, all of them with the last
                if not pending and not self.caught_up.is_set():
                    self.caught_up.set()
                await self._housekeeping()
                if self._stopping and not pending:
                    break
        finally:
            with anyio.CancelScope(shield=True):
                await sub.unsubscribe()

    async def _ack(self, msg: Any) -> None:
        """Ack ``msg``; if the connection is down the stream redelivers it, and it is skipped."""
        try:
            await msg.ack()
        except NatsError as exc:
            self._cut_off(exc)

    def _cut_off(self, exc: Exception) -> None:
        self.disconnects += 1
        if self.disconnects == 1 or self.disconnects % 100 == 0:
            log.warning("beat stream unreachable (%s); waiting for the connection", exc)

    def _take(self, msg: Any) -> bool:
        """Append ``msg`` if new; False for a duplicate or a record we cannot read."""
        seq = int(msg.metadata.sequence.stream)
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
