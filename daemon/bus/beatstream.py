"""The JetStream stream of beat records (SPEC 5.1, 6): ``VENOM_BEATS`` on ``<prefix>.beat``.

The arbiter publishes every BeatRecord with ``Nats-Msg-Id`` set to the
beat's id (``<run id>.<beat>``), so a retried publish is stored once, and
with the previous record's id as ``Nats-Expected-Last-Msg-Id``, so records
are stored in beat order or not at all; :class:`BeatPublisher` sends again
what the stream has not acked. The ledger consumes the stream with a
durable consumer and explicit acks.
"""

from __future__ import annotations

import logging
import secrets
import time

import anyio
import msgspec

from venom.daemon.bus.base import Bus, BusMessage, JetStream, Subscription, header
from venom.daemon.observe.tracing import BeatTrace
from venom.schemas import HDR_TRACEPARENT, BeatRecord, Codec, Subjects

log = logging.getLogger("venom.beatstream")

STREAM = "VENOM_BEATS"


def stream_name(subjects: Subjects) -> str:
    """``VENOM_BEATS`` for the default prefix; ``<PREFIX>_BEATS`` otherwise (one per prefix)."""
    token = "".join(c if c.isalnum() else "_" for c in subjects.prefix).upper()
    return f"{token}_BEATS"


HDR_MSG_ID = "Nats-Msg-Id"
HDR_EXPECTED_LAST_ID = "Nats-Expected-Last-Msg-Id"


async def ensure_stream(js: JetStream, subjects: Subjects, *, replicas: int = 1) -> str:
    """Create the beat stream if missing (file storage, ``replicas`` copies); its name."""
    name = stream_name(subjects)
    if await js.ensure_stream(name, [subjects.beat], replicas=replicas, duplicate_window=120.0):
        log.info("created JetStream stream %s on %s", name, subjects.beat)
    return name


class _Pending:
    """One record on its way into the stream."""

    __slots__ = ("beat", "data", "headers", "sent", "token")

    def __init__(self, beat: int, data: bytes, headers: dict[str, str]) -> None:
        self.beat = beat
        self.data = data
        self.headers = headers
        #: The last send's token (the ack's reply subject ends with it); "" before one.
        self.token = ""
        self.sent = 0.0


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
    """

    def __init__(
        self,
        bus: Bus,
        subjects: Subjects,
        codec: Codec,
        *,
        ack_timeout: float = 2.0,
        max_backlog: int = 1000,
    ) -> None:
        self.bus = bus
        self.js = bus.jetstream()
        self.subjects = subjects
        self.codec = codec
        self.ack_timeout = ack_timeout
        self.max_backlog = max_backlog
        self.run_id = secrets.token_hex(6)
        self.stream = stream_name(subjects)
        self.published = 0
        self.failed = 0
        self.resent = 0
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

    @property
    def backlog(self) -> int:
        """Records not acked by the stream yet."""
        return len(self._pending)

    def hold_reason(self) -> str:
        """Why the arbiter should hold beats ("" when it need not)."""
        if len(self._pending) >= self.max_backlog:
            return f"{len(self._pending)} beat records not stored in {self.stream} yet"
        return ""

    async def start(self, replicas: int = 1) -> None:
        """Find the beat stream, or create it with ``replicas`` copies; listen for acks."""
        self.stream = await ensure_stream(self.js, self.subjects, replicas=replicas)
        await self._listen()

    async def _listen(self) -> None:
        if self._sub is None:
            self._inbox = self.bus.new_inbox() + "."
            self._sub = await self.bus.subscribe(self._inbox + "*", self._on_ack)

    async def stop(self) -> None:
        """Stop listening for acks (the connection's close does it too)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    async def __call__(self, record: BeatRecord) -> None:
        msg_id = f"{self.run_id}.{record.beat}"
        headers = {HDR_MSG_ID: msg_id}
        if self._last_id:
            headers[HDR_EXPECTED_LAST_ID] = self._last_id
        self._last_id = msg_id
        if self.trace is not None and self.trace.trace_id == record.trace_id:
            headers[HDR_TRACEPARENT] = self.trace.root_traceparent
        entry = self._pending[record.beat] = _Pending(
            record.beat, self.codec.encode_record(record), headers
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
        if error is not None:
            self._settle(
                entry,
                f"nats: APIError: code={error.code} err_code={error.err_code} "
                f"description='{error.description}'",
            )
        else:
            self._settle(entry, "")

    def _settle(self, entry: _Pending, error: str) -> None:
        """The latest send of ``entry`` is acked ("") or failed (``error``)."""
        if error:
            self._failed(entry, error)
        elif self._pending.get(entry.beat) is entry:
            del self._pending[entry.beat]
            self.published += 1
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
            if not self._pending or not self.bus.connected:
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
            while self._pending and self.bus.connected:
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
        if self._pending:
            first = next(iter(self._pending))
            log.error(
                "%d beat records (from beat %d) not stored in %s: %s",
                len(self._pending),
                first,
                self.stream,
                "no connection to NATS" if not self.bus.connected else f"no ack in {timeout:g} s",
            )
