"""The end of the beat stream, and the record ids that fence it (SPEC 2.6).

Every arbiter record is stored with ``Nats-Msg-Id = <epoch>.<beat>``
(:func:`record_id`). :func:`read_tail` reads the stream's last records back
from its end, passing over whatever is not an arbiter's record (junk, a
forgery without a record id), so an arbiter that starts, takes over, or was
refused by the stream's order check learns the beat number, genome, PID
state and context to continue from, whose epoch wrote last, and whether
anything was stored after it.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from venom.daemon.bus.base import JetStream, StoredMessage
from venom.schemas import BeatRecord, Codec, Subjects

STREAM = "VENOM_BEATS"


def stream_name(subjects: Subjects) -> str:
    """``VENOM_BEATS`` for the default prefix; ``<PREFIX>_BEATS`` otherwise (one per prefix)."""
    token = "".join(c if c.isalnum() else "_" for c in subjects.prefix).upper()
    return f"{token}_BEATS"


def ha_bucket(subjects: Subjects) -> str:
    """The KV bucket of the HA leader entry: ``VENOM_HA`` for the default prefix."""
    return "".join(c if c.isalnum() else "_" for c in subjects.prefix).upper() + "_HA"


HDR_MSG_ID = "Nats-Msg-Id"
HDR_EXPECTED_LAST_ID = "Nats-Expected-Last-Msg-Id"
HDR_EXPECTED_LAST_SEQ = "Nats-Expected-Last-Sequence"
#: JetStream's error codes for a refused expectation (wrong last msg id / sequence).
FENCE_ERRORS = frozenset({10070, 10071})


def record_id(epoch: str, beat: int) -> str:
    """The ``Nats-Msg-Id`` of an arbiter's record: ``<epoch>.<beat>``."""
    return f"{epoch}.{beat}"


def epoch_of(msg_id: str) -> str:
    """The epoch part of a record id ("" for an id that is not one)."""
    epoch, _, beat = msg_id.rpartition(".")
    return epoch if epoch and beat.isdigit() else ""


class StreamTail(msgspec.Struct, kw_only=True):
    """The end of the beat stream: its last records, and whatever was stored after them."""

    #: The last records, oldest first (at most what :func:`read_tail` was asked for).
    records: list[BeatRecord] = msgspec.field(default_factory=list)
    #: The last record's ``Nats-Msg-Id`` and stream sequence ("" / 0: no record).
    record_id: str = ""
    record_seq: int = 0
    #: The stream's last sequence (> record_seq when junk came after, or after a purge).
    last_seq: int = 0

    @property
    def last(self) -> BeatRecord | None:
        return self.records[-1] if self.records else None

    @property
    def epoch(self) -> str:
        return epoch_of(self.record_id)


async def read_tail(
    js: JetStream, subjects: Subjects, codec: Codec, *, records: int = 1, scan: int = 256
) -> StreamTail:
    """The stream's last ``records`` beat records (looking back ``scan`` messages at most).

    A message that is not an arbiter's record (junk, a forgery without a
    record id) is passed over; the records returned are consecutive beats.
    """
    stream = stream_name(subjects)
    tail = StreamTail(last_seq=await js.last_sequence(stream))
    msg = await js.last_message(stream, subjects.beat)
    if msg is None:
        return tail
    decode = codec.decoder(BeatRecord).decode
    seq = msg.seq
    found: StoredMessage | None = msg
    for _ in range(scan):
        if found is not None:
            record = _record_of(found, decode)
            if record is not None:
                if tail.records and record.beat != tail.records[0].beat - 1:
                    break
                if not tail.records:
                    tail.record_id, tail.record_seq = found.headers.get(HDR_MSG_ID, ""), seq
                tail.records.insert(0, record)
                if len(tail.records) >= records:
                    break
            elif tail.records:
                break
        seq -= 1
        if seq < 1:
            break
        found = await js.message(stream, seq)
    return tail


def _record_of(msg: StoredMessage, decode: Callable[[bytes], BeatRecord]) -> BeatRecord | None:
    """The record in ``msg`` when an arbiter stored it (a record id matching its beat)."""
    msg_id = msg.headers.get(HDR_MSG_ID, "")
    if not epoch_of(msg_id):
        return None
    try:
        record = decode(msg.data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return record if msg_id.endswith(f".{record.beat}") else None
