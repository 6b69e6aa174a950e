"""The ledger's consumer: JetStream ``VENOM_BEATS`` → the Merkle log (SPEC 6).

A durable pull consumer with explicit acks. Each record is appended with
its stream sequence; an entry is acked only after it is durable (fsync per
entry, or group commit: fsync once per ``group_ms`` window, then ack the
whole window). A record redelivered after a crash has a sequence the log
already holds: it is acked and skipped, so every beat is appended exactly
once. Only records that continue the log are appended: the first one, then
each whose beat number is the last one's plus one; junk, replays and
forgeries on the beat subject are refused, counted and logged (at most
once per 10 s per kind). The head (size, root, time) is published every
``head_interval``.

Pulling: the bus's :class:`~venom.daemon.bus.PullConsumer` keeps one long
pull request of ``batch`` records outstanding, so the server pushes records
as they are stored and the writer collects what has arrived once per window.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Literal

import anyio
import anyio.lowlevel
import msgspec
from msgspec import Meta
from opentelemetry.trace import SpanKind, TracerProvider

from venom.daemon.bus import Bus, BusMessage, PullConsumer, ensure_stream
from venom.daemon.observe import SYSTEM, ConsumerTrace, ProblemLog, end_span
from venom.plugins.ledger.entry import GENESIS, canonical_record, make_entry, parse_entry
from venom.plugins.ledger.store import LedgerStore
from venom.schemas import BeatRecord, BusError, Codec, LedgerHead, SchemaError, Subjects

log = logging.getLogger("venom.ledger")


#: The largest beat record read from the stream (the stream took it already:
#: its limit is the server's max_payload, not a plugin reply's).
RECORD_MAX_BYTES = 16 * 1024 * 1024


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


def _is_status(msg: BusMessage) -> bool:
    """A JetStream status message (a pull request ended, a heartbeat), not a record."""
    headers = msg.headers
    return headers is not None and "Status" in headers


class LedgerWriter:
    """Moves records from the stream into a :class:`LedgerStore`."""

    def __init__(
        self,
        bus: Bus,
        subjects: Subjects,
        store: LedgerStore,
        config: LedgerConfig,
        codec: Codec | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.bus = bus
        self.subjects = subjects
        self.store = store
        self.config = config
        self.codec = codec or Codec()
        self.last_seq = 0
        self.last_beat = 0
        self.prev = GENESIS
        self.appended = 0
        self.duplicates = 0
        self.rejected = 0
        #: Records refused because their beat does not follow the log's last.
        self.refused = 0
        self.problems = ProblemLog(log, interval=10.0)
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

    async def _consumer(self) -> PullConsumer | None:
        """The durable pull consumer, once the stream can make one (None: stopping).

        A cluster that is forming or electing a stream leader answers with a
        timeout or an error for a while: try again every second, say so once.
        """
        js = self.bus.jetstream()
        tries = 0
        while not self._stopping:
            try:
                stream = await ensure_stream(js, self.subjects, replicas=self.config.replicas)
                # The log, not the consumer, knows what is stored: start the durable
                # consumer right after the last stored sequence, so a record that was
                # appended but not acked before a crash is never overtaken (no gaps).
                consumer = await js.pull_consumer(
                    stream, self.config.durable, after=self.last_seq, batch=self.config.batch
                )
            except BusError as exc:
                tries += 1
                if tries == 1 or tries % 60 == 0:
                    log.warning("the beat stream is not ready (%s); trying again", exc)
                await anyio.sleep(1.0)
                continue
            if tries:
                log.info("the beat stream is ready after %d tries", tries + 1)
            return consumer
        return None

    async def run(self) -> None:
        puller = await self._consumer()
        if puller is None:
            return
        window = self.config.group_ms / 1000 if self.config.fsync == "group" else 0.0
        try:
            while True:
                pending: list[BusMessage] = []
                last: BusMessage | None = None  # the last record of this round, taken or not
                deadline = time.monotonic() + window
                try:
                    await puller.top_up()
                    first = await puller.first(0.5)
                    if first is not None and not _is_status(first) and window:
                        # Group commit: let the window fill, then take what came.
                        await anyio.sleep(max(0.0, deadline - time.monotonic()))
                    msgs = [first, *puller.arrived()] if first is not None else []
                except BusError as exc:  # cut off from the server: it reconnects
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
                        if self._take(msg, puller.sequence(msg)):
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
                    await self._ack(puller, last)  # ... then acked, all of them with the last
                if trouble is not None:  # e.g. the consumer is gone: as if cut off
                    self._cut_off(BusError(trouble))
                    await anyio.sleep(0.25)
                if not pending and not self.caught_up.is_set() and not msgs:
                    self.caught_up.set()
                await self._housekeeping()
                if self._stopping and not pending:
                    break
        finally:
            with anyio.CancelScope(shield=True):
                await puller.stop()

    async def _ack(self, puller: PullConsumer, msg: BusMessage) -> None:
        """Ack ``msg``; if the connection is down the stream redelivers it, and it is skipped."""
        try:
            await puller.ack(msg)
        except BusError as exc:
            self._cut_off(exc)

    def _cut_off(self, exc: Exception) -> None:
        self.disconnects += 1
        if self.disconnects == 1 or self.disconnects % 100 == 0:
            log.warning("beat stream unreachable (%s); waiting for the connection", exc)

    def _take(self, msg: BusMessage, seq: int) -> bool:
        """Append ``msg`` (stream sequence ``seq``) if new; False for a duplicate or junk."""
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
            record = self.codec.decode(BeatRecord, msg.data, max_bytes=RECORD_MAX_BYTES)
            body = canonical_record(record, self.codec)
        except SchemaError as exc:
            self.rejected += 1
            self.problems.report("not a beat record", "", self.subjects.beat, f"#{seq}: {exc}")
            self.last_seq = seq
            return False
        if self.last_beat and record.beat != self.last_beat + 1:
            # A replay, a forgery or a stray: the log holds each beat once, in order.
            self.refused += 1
            what = "repeats" if record.beat <= self.last_beat else "skips ahead of"
            self.problems.report(
                "record does not continue the log",
                "",
                self.subjects.beat,
                f"#{seq}: beat {record.beat} {what} beat {self.last_beat}",
            )
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
                await self.bus.publish(self.subjects.ledger_head, self.codec.encode(head))
            except BusError as exc:
                self._cut_off(exc)
