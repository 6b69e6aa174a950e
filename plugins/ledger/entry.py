"""Ledger entry bytes (SPEC 6): canonical JSON of the record, the hash chain, the stream position.

An entry is the compact JSON object, keys in sorted order::

    {"prev":"<hex leaf hash of the previous entry>","record":<BeatRecord>,"seq":<stream seq>}

``record`` is the BeatRecord in canonical form (keys sorted, no whitespace),
``prev`` chains every entry to the one before it (64 zeros for the first),
and ``seq`` is the record's JetStream stream sequence, which makes appends
idempotent across restarts. Anyone can recompute leaf hashes and the root
from these bytes: leaf = H(0x00 ‖ entry), H = SHA3-256.
"""

from __future__ import annotations

import msgspec

from venom.schemas import BeatRecord, Codec, LedgerCorrupt

GENESIS = bytes(32)


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded ledger entry."""

    prev: str
    record: BeatRecord
    seq: int = 0


_decoder = msgspec.json.Decoder(Entry)


def make_entry(record_json: bytes, prev: bytes, seq: int) -> bytes:
    """Entry bytes from a record already in canonical JSON."""
    return b"".join(
        (
            b'{"prev":"',
            prev.hex().encode(),
            b'","record":',
            record_json,
            b',"seq":',
            str(seq).encode(),
            b"}",
        )
    )


def canonical_record(record: BeatRecord, codec: Codec) -> bytes:
    """The record's canonical JSON (sorted keys, no whitespace, finite floats)."""
    return codec.encode_canonical(record)


def parse_entry(data: bytes, index: int = -1) -> Entry:
    """Decode entry bytes; LedgerCorrupt names the entry and the problem."""
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        where = f"entry {index}" if index >= 0 else "entry"
        raise LedgerCorrupt(f"{where}: not a valid ledger entry: {exc}") from exc


# Where make_entry puts the fields, for readers that check entries without
# decoding them (``venom ledger verify`` reads every entry so).
_PREV_KEY = b'{"prev":"'
_PREV_END = len(_PREV_KEY) + 2 * len(GENESIS)
_AFTER_PREV = b'","'
_SEQ_KEY = b',"seq":'
_BEAT_KEY = b'","record":{"beat":'


def entry_prev_hex(data: bytes) -> bytes | None:
    """The ``prev`` hex digits of entry bytes, None when they do not start as an entry does."""
    if not data.startswith(_PREV_KEY):
        return None
    if data[_PREV_END : _PREV_END + len(_AFTER_PREV)] != _AFTER_PREV:
        return None
    return data[len(_PREV_KEY) : _PREV_END]


def entry_seq(data: bytes) -> int | None:
    """The stream sequence that ends entry bytes, None without one (or a negative one)."""
    cut = data.rfind(_SEQ_KEY)
    try:
        seq = int(data[cut + len(_SEQ_KEY) : -1]) if cut > 0 else -1
    except ValueError:
        seq = -1
    return seq if seq >= 0 and data[-1:] == b"}" else None


def entry_beat(data: bytes) -> int | None:
    """The record's beat number (its first key in canonical form), None without one."""
    start = end = _PREV_END + len(_BEAT_KEY)
    if data[_PREV_END:start] != _BEAT_KEY:
        return None
    while end < len(data) and 48 <= data[end] <= 57:  # ASCII digits
        end += 1
    beat = int(data[start:end]) if end > start else 0
    return beat if beat >= 1 else None
