"""The JetStream stream of beat records (SPEC 2.6, 5.1, 6): ``VENOM_BEATS`` on ``<prefix>.beat``.

The arbiter publishes every BeatRecord with ``Nats-Msg-Id`` set to
``<epoch>.<beat>`` (the epoch is unique to each arbiter incarnation), so a
retried publish is stored once, and with the previous record's id as
``Nats-Expected-Last-Msg-Id``, so records are stored in beat order, by one
writer, or not at all: leadership is the right to append, and the stream
enforces it. :class:`BeatPublisher` sends again what the stream has not
acked; when the stream refuses a record because something else was stored
after ours, it stops and says so (:attr:`BeatPublisher.fenced`), and the
arbiter reads the stream's tail (:func:`read_tail`) to learn whether
another arbiter leads or junk got in. The ledger consumes the stream with
a durable consumer and explicit acks.
"""

from __future__ import annotations

import logging
import secrets
import time

import anyio
import msgspec

from venom.daemon.bus.base import Bus, BusMessage, JetStream, Subscription, header
from venom.daemon.bus.spill import Spill, SpillKeeper
from venom.daemon.bus.streamtail import (
    FENCE_ERRORS,
    HDR_EXPECTED_LAST_ID,
    HDR_EXPECTED_LAST_SEQ,
    HDR_MSG_ID,
    StreamTail,
    read_tail,
    record_id,
    stream_name,
)
from venom.daemon.observe.tracing import BeatTrace
from venom.schemas import HDR_TRACEPARENT, BeatRecord, BusError, Codec, Subjects

log = logging.getLogger("venom.beatstream")


async def ensure_stream(js: JetStream, subjects: Subjects, *, replicas: int = 1) -> str:
    """Create the beat stream if missing (file storage, ``replicas`` copies); its name."""
    name = stream_name(subjects)
    if await js.ensure_stream(name, [subjects.beat], replicas=replicas, duplicate_window=120.0):
        log.info("created JetStream stream %s on %s", name, subjects.beat)
    return name


class _Pending:
    """One record on its way into the stream."""

    __slots__ = ("beat", "born", "data", "headers", "prev", "sent", "token")

    def __init__(self, beat: int, data: bytes, headers: dict[str, str], prev: str) -> None:
        self.beat = beat
        self.data = data
        self.headers = headers
        #: The id of the record before (what this one continues), and when it was made.
        self.prev = prev
        self.born = time.monotonic()
        #: The last send's token (the ack's reply subject ends with it); "" before one.
        self.token = ""
        self.sent = 0.0

    @property
    def msg_id(self) -> str:
        return self.headers[HDR_MSG_ID]


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    """JetStream's answer to a publish: ``{"stream", "seq", ...}`` or ``{"error": {...}}``."""

    stream: str = ""
    seq: int = 0
    error: _ApiError | None = None


class BeatPublisher:
    """Puts every beat record into the stream, once, in beat order, without blocking the beat.

    Records are published without waiting for their ack and kept until the
    stream acks them. Each carries ``Nats-Msg-Id`` (a retry is stored once)
    and ``Nats-Expected-Last-Msg-Id`` = the previous record's id, so the
    stream refuses a record whose predecessor went missing (say, in the
    socket when the connection dropped) instead of storing beats out of
    order. When an ack fails or does not come within ``ack_timeout``,
    :meth:`run` sends every unacked record again, in order, one ack at a
    time. :meth:`hold_reason` tells the arbiter to hold beats while records
    pile up (``max_backlog``), so no beat is issued that cannot reach the
    stream.

    A record is a plain publish whose reply subject is ``<inbox>.<token>``,
    one token per send, on one inbox subscription of this publisher's: what
    nats-py's ``publish_async`` puts on the wire, without its per-publish
    future, semaphore, random token and stdlib-JSON ack (the beat's hot path).
    An ack for a send that was superseded by a resend is ignored.

    Fencing (SPEC 2.6): ids are ``<epoch>.<beat>``; the first record after
    :meth:`resume` expects the stream's last record (or, with junk or an
    empty stream, its last sequence), every later one the record before.
    A record the stream refuses for that expectation is not sent again: the
    publisher is :attr:`fenced` until the arbiter has read the tail and
    either stood down (:meth:`abandon`) or found only junk in the way
    (:meth:`refence`).
    """

    def __init__(
        self,
        bus: Bus,
        subjects: Subjects,
        codec: Codec,
        *,
        ack_timeout: float = 2.0,
        max_backlog: int = 1000,
        spill: Spill | None = None,
    ) -> None:
        self.bus = bus
        self.js = bus.jetstream()
        self.subjects = subjects
        self.codec = codec
        self.ack_timeout = ack_timeout
        self.max_backlog = max_backlog
        #: This incarnation's epoch: the first part of every record id.
        self.epoch = secrets.token_hex(6)
        #: Refused by the stream's order check: someone stored after our last record.
        self.fenced = False
        self.fence_reason = ""
        #: The tail that showed another arbiter writing after us (None while we lead).
        self.deposed: StreamTail | None = None
        #: The sequence the next record expects (when it is not a record id).
        self._after_seq: int | None = 0
        self.stream = stream_name(subjects)
        self.published = 0
        self.failed = 0
        self.resent = 0
        #: The last beat the stream acked (or held when we resumed).
        self.stored = 0
        #: The arbiter's beat trace: each record carries its beat's root span in
        #: ``traceparent``, so the ledger's append joins the beat's trace.
        self.trace: BeatTrace | None = None
        self._pending: dict[int, _Pending] = {}  # unacked, in beat order
        self._last_id = ""
        self._resending = False
        self._trouble = anyio.Event()
        self._acks = anyio.Event()
        #: Sends waiting for their ack, by token.
        self._sent: dict[str, _Pending] = {}
        self._sends = 0
        self._inbox = ""
        self._sub: Subscription | None = None
        self._decode_ack = msgspec.json.Decoder(_PubAck).decode
        #: The record :meth:`_resend` waits for, and what tells it the ack came.
        self._awaited: _Pending | None = None
        self._settled = anyio.Event()
        #: Where records the stream has not acked within ``ack_timeout`` are kept.
        self.spill = spill
        self._keeper = SpillKeeper(spill, self.stream) if spill is not None else None

    @property
    def backlog(self) -> int:
        """Records not acked by the stream yet."""
        return len(self._pending)

    @property
    def waiting_bytes(self) -> int:
        """The size of the records not acked yet."""
        return sum(len(e.data) for e in self._pending.values())

    def hold_reason(self) -> str:
        """Why the arbiter should hold beats ("" when it need not)."""
        if self.fenced:
            return f"{self.fence_reason}; reading the stream's tail"
        if len(self._pending) >= self.max_backlog:
            return f"{len(self._pending)} beat records not stored in {self.stream} yet"
        if self._keeper is not None and self._keeper.full:
            return (
                f"{len(self._pending)} beat records not stored in {self.stream} yet, "
                f"and {self._keeper.spill.path} is full"
            )
        return ""

    async def start(self, replicas: int = 1, *, records: int = 1) -> StreamTail:
        """Find (or create, ``replicas`` copies) the stream, resume after its tail; listen.

        Returns the tail (its last ``records`` records), which the arbiter
        continues from.
        """
        self.stream = await ensure_stream(self.js, self.subjects, replicas=replicas)
        tail = await read_tail(self.js, self.subjects, self.codec, records=records)
        self.resume(tail)
        await self._listen()
        if self._keeper is not None:
            tail = await self._take_spill(tail, records)
        return tail

    async def _take_spill(self, tail: StreamTail, records: int) -> StreamTail:
        """Send first what a previous run left in the spill; the tail to continue from."""
        assert self._keeper is not None
        stored = tail.last.beat if tail.last is not None else 0
        keep = await self._keeper.restore(stored, tail.record_id)
        if not keep:
            return tail
        for spilled in keep:  # they continue the tail: each one's prev is the id before
            headers, prev = self._chain(spilled.msg_id)
            entry = _Pending(spilled.beat, spilled.data, headers, prev)
            entry.born = 0.0  # in the spill already
            self._pending[spilled.beat] = entry
        self._trouble.set()  # the run loop sends them, in order
        decode = self.codec.decoder(BeatRecord).decode
        spilled_records = [decode(r.data) for r in keep[-records:]]
        return StreamTail(
            records=(tail.records + spilled_records)[-records:],
            record_id=keep[-1].msg_id,
            record_seq=tail.record_seq,
            last_seq=tail.last_seq,
        )

    async def _listen(self) -> None:
        if self._sub is None:
            self._inbox = self.bus.new_inbox() + "."
            self._sub = await self.bus.subscribe(self._inbox + "*", self._on_ack)

    async def stop(self) -> None:
        """Stop listening for acks (the connection's close does it too)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    def resume(self, tail: StreamTail) -> None:
        """Continue the stream after ``tail``: the next record expects what it ends with."""
        self._last_id = tail.record_id
        self.stored = tail.last.beat if tail.last is not None else 0
        # After junk, or on an empty stream (0), the next record expects a sequence.
        fresh = not tail.record_id or tail.last_seq != tail.record_seq
        self._after_seq = tail.last_seq if fresh else None

    def refence(self, tail: StreamTail) -> None:
        """Junk was stored after our last record: send what is pending after it, in order."""
        if self._pending:
            first = next(iter(self._pending.values()))
            first.headers.pop(HDR_EXPECTED_LAST_ID, None)
            first.headers[HDR_EXPECTED_LAST_SEQ] = str(tail.last_seq)
        else:
            self._after_seq = tail.last_seq
        self.fenced = False
        self._trouble.set()

    def abandon(self) -> list[int]:
        """Another arbiter leads: forget the records the stream refused; their beats."""
        beats = list(self._pending)
        self._pending.clear()
        self._sent.clear()
        self.fenced = False
        self.deposed = None
        return beats

    def _chain(self, msg_id: str) -> tuple[dict[str, str], str]:
        """The headers of the next record, ``msg_id``, and the id of the one it continues.

        The first after :meth:`resume` expects the stream's last sequence (junk,
        an empty stream) or last record; every later one the record before.
        """
        headers = {HDR_MSG_ID: msg_id}
        prev = self._last_id
        if self._after_seq is not None:
            headers[HDR_EXPECTED_LAST_SEQ] = str(self._after_seq)
            self._after_seq = None
        elif prev:
            headers[HDR_EXPECTED_LAST_ID] = prev
        self._last_id = msg_id
        return headers, prev

    async def __call__(self, record: BeatRecord) -> None:
        headers, prev = self._chain(record_id(self.epoch, record.beat))
        if self.trace is not None and self.trace.trace_id == record.trace_id:
            headers[HDR_TRACEPARENT] = self.trace.root_traceparent
        entry = self._pending[record.beat] = _Pending(
            record.beat, self.codec.encode_record(record), headers, prev
        )
        if not self._resending:  # else the resend loop sends it, in order
            await self._send(entry)

    async def _send(self, entry: _Pending) -> None:
        if self._sub is None:
            await self._listen()
        entry.sent = time.monotonic()
        # A new token per send: the ack of a send superseded by this one is ignored.
        self._sent.pop(entry.token, None)
        self._sends += 1
        token = entry.token = str(self._sends)
        self._sent[token] = entry
        try:
            await self.bus.publish(
                self.subjects.beat, entry.data, reply=self._inbox + token, headers=entry.headers
            )
        except Exception as exc:
            self._sent.pop(token, None)
            self._settle(entry, str(exc) or type(exc).__name__)

    async def _on_ack(self, msg: BusMessage) -> None:
        entry = self._sent.pop(msg.subject[len(self._inbox) :], None)
        if entry is None:
            return  # superseded by a resend, or not ours
        data = msg.data
        if not data:
            status = header(msg, "Status")
            if status == "503":
                self._settle(entry, "nats: no response from stream")
            else:
                self._settle(entry, f"empty ack (status {status or '-'})")
            return
        try:
            ack = self._decode_ack(data)
        except msgspec.DecodeError as exc:
            self._settle(entry, f"malformed ack: {exc}")
            return
        error = ack.error
        if error is not None and error.err_code in FENCE_ERRORS:
            self._fence(entry, error.description)
        elif error is not None:
            self._settle(
                entry,
                f"nats: APIError: code={error.code} err_code={error.err_code} "
                f"description='{error.description}'",
            )
        else:
            self._settle(entry, "")

    def _fence(self, entry: _Pending, why: str) -> None:
        """The stream refused ``entry``'s expectation: stop sending until the tail is read."""
        if not self.fenced and self._pending.get(entry.beat) is entry:
            self.failed += 1
            self.fence_reason = f"beat {entry.beat} refused by {self.stream}: {why}"
            self.fenced = True
            self._trouble.set()
        if entry is self._awaited:
            self._settled.set()

    async def _read_fence(self) -> None:
        """Why the stream refused our order, from its tail; go on unless another arbiter wrote.

        Our own record lost on the way (the tail is ours): send again from
        there. Junk after our last record: send after it. A record of another
        epoch: :attr:`deposed` holds that tail, and nothing more is sent.
        """
        tail = await read_tail(self.js, self.subjects, self.codec)
        wanted = self.stored + 1  # the beat we could not write
        if tail.last is not None and tail.epoch != self.epoch and tail.last.beat >= wanted:
            if self.deposed is None:
                log.warning(
                    "%s; epoch %s wrote beat %d after ours (%d): another arbiter leads",
                    self.fence_reason,
                    tail.epoch,
                    tail.last.beat if tail.last else 0,
                    self.stored,
                )
            self.deposed = tail
            return
        if tail.last_seq != tail.record_seq or tail.epoch != self.epoch:
            log.warning(
                "%s; stream message %d is not an arbiter's record: sending after it",
                self.fence_reason,
                tail.last_seq,
            )
            self.refence(tail)
        else:
            self.fenced = False

    def _settle(self, entry: _Pending, error: str) -> None:
        """The latest send of ``entry`` is acked ("") or failed (``error``)."""
        if error:
            self._failed(entry, error)
        elif self._pending.get(entry.beat) is entry:
            del self._pending[entry.beat]
            self.published += 1
            self.stored = entry.beat
            self._acks.set()
        if entry is self._awaited:
            self._settled.set()

    def _failed(self, entry: _Pending, error: str) -> None:
        self.failed += 1
        if self.failed == 1 or self.failed % 1000 == 0:
            log.warning(
                "beat %d not stored in %s yet (%d failed attempts): %s; sending again",
                entry.beat,
                self.stream,
                self.failed,
                error,
            )
        self._trouble.set()

    async def run(self) -> None:
        """Send unacked records again when an ack failed or is overdue (a background task)."""
        while True:
            with anyio.move_on_after(self.ack_timeout / 4):
                await self._trouble.wait()
            if self._keeper is not None and (self._pending or self._keeper.spill.beats):
                try:
                    await self._keeper.keep(list(self._pending.values()), self.ack_timeout)
                except OSError as exc:
                    log.error("cannot write %s: %s", self._keeper.spill.path, exc)
            if not self._pending or not self.bus.connected or self.deposed is not None:
                continue
            if self.fenced:
                try:
                    await self._read_fence()
                except BusError as exc:
                    log.warning("cannot read the tail of %s: %s", self.stream, exc)
                if self.fenced:
                    continue
            oldest = next(iter(self._pending.values()))
            overdue = time.monotonic() - oldest.sent > self.ack_timeout
            if self._trouble.is_set() or overdue:
                self._trouble = anyio.Event()
                await self._resend()

    async def _resend(self) -> None:
        """Every unacked record again, in beat order, each acked before the next."""
        self._resending = True
        try:
            while self._pending and self.bus.connected and not self.fenced:
                entry = next(iter(self._pending.values()))
                self.resent += 1
                self._awaited, self._settled = entry, anyio.Event()
                await self._send(entry)
                if not self._settled.is_set():
                    with anyio.move_on_after(self.ack_timeout):
                        await self._settled.wait()
                if self._pending.get(entry.beat) is entry:
                    return  # not acked: the next round tries again
            if not self._pending:
                log.info("beat stream caught up: %d records sent again", self.resent)
        finally:
            self._awaited = None
            self._resending = False

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait (``timeout`` at most) until the stream has acked every record."""
        with anyio.move_on_after(timeout):
            while self._pending:
                self._acks = anyio.Event()
                # Cut off from the server, nothing more will be acked: 2 s grace at most.
                with anyio.move_on_after(0.25 if self.bus.connected else 2.0):
                    await self._acks.wait()
                if not self._acks.is_set() and not self.bus.connected:
                    break
        if self._keeper is not None and await self._keeper.keep_at_stop(
            list(self._pending.values())
        ):
            return
        if self._pending:
            first = next(iter(self._pending))
            log.error(
                "%d beat records (from beat %d) not stored in %s: %s",
                len(self._pending),
                first,
                self.stream,
                "no connection to NATS" if not self.bus.connected else f"no ack in {timeout:g} s",
            )
