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
