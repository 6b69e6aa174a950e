"""The spill file: beat records the stream has not acked, kept on disk (SPEC 2.6).

When the beat stream does not take records (its disk is full, the server
is gone), :class:`~venom.daemon.bus.beatstream.BeatPublisher` writes what
waits for an ack to ``<state>/beats.spill``, and sends it, in beat order,
once the stream takes records again, after a restart of the daemon too.

The file is bounded and made at its full size when opened
(``posix_fallocate``), so writing into it needs no new disk blocks: it
still takes records while the disk around it is full. It holds a header
(magic, generation) and frames (length, CRC-32, generation, then the
record id and the record). :meth:`Spill.clear` only bumps the generation,
so a frame of an earlier generation, or a torn one, ends the valid part.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import anyio
import msgspec

log = logging.getLogger("venom.spill")

NAME = "beats.spill"
MAGIC = b"VENOMSPL"
_HEADER = struct.Struct("<8sQ")  # magic, generation
_FRAME = struct.Struct("<IIQ")  # payload length, CRC-32 of the payload, generation
_START = 64


class Spilled(msgspec.Struct, array_like=True):
    """One record in the spill: its beat, its ``Nats-Msg-Id``, the id of the record
    before it (what it continues), its encoded bytes."""

    beat: int
    msg_id: str
    prev: str
    data: bytes


def continuation(found: list[Spilled], stored: int, last_id: str) -> tuple[list[Spilled], str]:
    """What of ``found`` continues a stream whose last record is beat ``stored``, id ``last_id``.

    Records the stream already holds (beat <= ``stored``) are left out. The
    rest must start with the record after ``last_id``; else another arbiter
    wrote after it, and the second element says why the spill is dropped.
    """
    keep = [r for r in found if r.beat > stored]
    if not keep or (keep[0].beat == stored + 1 and keep[0].prev == last_id):
        return keep, ""
    return [], (
        f"beats {keep[0].beat}..{keep[-1].beat} do not continue the stream "
        f"(its last record is beat {stored}, {last_id or 'none'})"
    )


class Spill:
    """A preallocated file of :class:`Spilled` records, appended in beat order."""

    def __init__(self, path: Path, capacity: int = 8 << 20) -> None:
        self.path = Path(path)
        self.capacity = max(capacity, _START + 4096)
        #: The beats in the file (the last one written: :attr:`last`).
        self.beats = 0
        self.last = 0
        self._fd = -1
        self._generation = 0
        self._end = _START
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Spilled).decode

    @property
    def first(self) -> int:
        """The first beat in the file (0 when empty)."""
        return self.last - self.beats + 1 if self.beats else 0

    @property
    def free(self) -> int:
        """Bytes left for frames."""
        return self.capacity - self._end

    def open(self) -> list[Spilled]:
        """Open (or make, at full size) the file; the records a previous run left in it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size < self.capacity:
                os.posix_fallocate(fd, 0, self.capacity)
            self.capacity = max(self.capacity, size)
            found = self._read(fd) if size >= _START else []
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if not found:
            self._reset(self._generation + 1)
        return found

    def _read(self, fd: int) -> list[Spilled]:
        magic, self._generation = _HEADER.unpack(os.pread(fd, _HEADER.size, 0))
        if magic != MAGIC:
            self._generation = 0
            return []
        found: list[Spilled] = []
        at = _START
        while at + _FRAME.size <= self.capacity:
            length, crc, generation = _FRAME.unpack(os.pread(fd, _FRAME.size, at))
            if generation != self._generation or length == 0:
                break
            payload = os.pread(fd, length, at + _FRAME.size)
            if len(payload) != length or zlib.crc32(payload) != crc:
                break
            try:
                record = self._decode(payload)
            except msgspec.DecodeError:
                break
            if found and record.beat != found[-1].beat + 1:
                break
            found.append(record)
            at += _FRAME.size + length
        self._end = at
        self.beats = len(found)
        self.last = found[-1].beat if found else 0
        return found

    def write(self, records: Sequence[Spilled]) -> int:
        """Append ``records`` (continuing :attr:`last`) as far as they fit, fsync; how many."""
        chunks: list[bytes] = []
        size = 0
        for record in records:
            payload = self._encode(record)
            if size + _FRAME.size + len(payload) > self.free:
                break
            chunks.append(_FRAME.pack(len(payload), zlib.crc32(payload), self._generation))
            chunks.append(payload)
            size += _FRAME.size + len(payload)
        count = len(chunks) // 2
        if not count:
            return 0
        os.pwrite(self._fd, b"".join(chunks), self._end)
        os.fsync(self._fd)
        self._end += size
        self.beats += count
        self.last = records[count - 1].beat
        return count

    def clear(self) -> None:
        """Forget every record (a new generation); the file keeps its size."""
        if self.beats or self._end != _START:
            self._reset(self._generation + 1)

    def _reset(self, generation: int) -> None:
        self._generation = generation
        os.pwrite(self._fd, _HEADER.pack(MAGIC, generation), 0)
        # The first frame slot: a zero length ends the valid part at once.
        os.pwrite(self._fd, b"\0" * _FRAME.size, _START)
        os.fsync(self._fd)
        self._end = _START
        self.beats = 0
        self.last = 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Waiting(Protocol):
    """A record waiting for the stream's ack, as the publisher keeps it."""

    beat: int
    prev: str
    data: bytes
    #: When it was made (monotonic seconds; 0: it came from the spill).
    born: float

    @property
    def msg_id(self) -> str: ...


class SpillKeeper:
    """Keeps :class:`Spill` in step with the records waiting for the stream's ack."""

    def __init__(self, spill: Spill, stream: str) -> None:
        self.spill = spill
        self.stream = stream
        #: The spill could not take every record waiting: the beat should hold.
        self.full = False

    async def restore(self, stored: int, last_id: str) -> list[Spilled]:
        """Open the spill; what it holds that continues the stream (beat ``stored``,
        id ``last_id``), to be sent first. What no longer continues it is dropped."""
        spill = self.spill
        found = await anyio.to_thread.run_sync(spill.open)
        keep, why = continuation(found, stored, last_id)
        if why:
            log.warning("%s: %s; dropped (another arbiter went on)", spill.path, why)
        if found and not keep:
            await anyio.to_thread.run_sync(spill.clear)
        if keep:
            log.info(
                "%s: beats %d..%d were decided but not stored; sending them to %s first",
                spill.path,
                keep[0].beat,
                keep[-1].beat,
                self.stream,
            )
        return keep

    async def keep(
        self, waiting: Sequence[Waiting], ack_timeout: float, *, everything: bool = False
    ) -> None:
        """Write what has waited ``ack_timeout`` (``everything``: all of it) and is not in
        the spill yet; empty the spill once nothing waits."""
        spill = self.spill
        if not waiting:
            if spill.beats:
                await anyio.to_thread.run_sync(spill.clear)
            self.full = False
            return
        first = waiting[0].beat
        if spill.beats and first != spill.first:
            # The stream took some since (or they were abandoned): only what waits.
            await anyio.to_thread.run_sync(spill.clear)
        old = time.monotonic() - ack_timeout
        new = [
            Spilled(w.beat, w.msg_id, w.prev, w.data)
            for w in waiting
            if w.beat > spill.last and (everything or w.born <= old)
        ]
        if not new:
            return
        written = await anyio.to_thread.run_sync(spill.write, new)
        if written < len(new) and not self.full:
            log.error(
                "%s is full (beats %d..%d in it): holding beats until %s takes records",
                spill.path,
                spill.first,
                spill.last,
                self.stream,
            )
        self.full = written < len(new)

    async def keep_at_stop(self, waiting: Sequence[Waiting]) -> bool:
        """Everything that waits into the spill; whether all of it is there."""
        try:
            await self.keep(waiting, 0.0, everything=True)
        except OSError as exc:
            log.error("cannot write %s: %s", self.spill.path, exc)
            return False
        if waiting and self.spill.last == waiting[-1].beat:
            log.warning(
                "beats %d..%d not stored in %s yet: kept in %s, sent at the next start",
                waiting[0].beat,
                waiting[-1].beat,
                self.stream,
                self.spill.path,
            )
            return True
        return not waiting
