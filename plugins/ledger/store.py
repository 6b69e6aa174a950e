"""The ledger's files: an append-only log of checksummed frames, an index, the
Merkle tree's complete-subtree hashes, and an atomic checkpoint (SPEC 6).

Layout of ``<dir>/``::

    entries.log    frames: u32 length | u32 CRC-32 of the payload | payload
    entries.idx    u64 byte offset of each frame (entry i at 8·i)
    tree.<h>       32-byte hashes of the complete subtrees of 2**h leaves
    checkpoint     {"size", "root", "time"} JSON, replaced atomically

All integers are little-endian. A frame's payload is the entry's bytes (see
:mod:`venom.plugins.ledger.entry`).

Durability: the log is the truth. :meth:`LedgerStore.sync` (each group
commit) fsyncs ``entries.log`` only; the index and the tree files are
derived from it, written through at every sync but fsynced only by
:meth:`LedgerStore.checkpoint`, before the checkpoint that names their size.
So after a crash they are trusted up to the checkpoint's size and no
further: on open, index entries and subtree hashes past it are recomputed
from the log (a file tail past it may be short or garbage). A torn log tail
(a frame cut short or failing its CRC after the last complete one) is
truncated, and the index and tree files are rewritten to match the log.
fsync errors are fatal (:class:`LedgerError`): a ledger that cannot make
entries durable stops.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import BinaryIO, Literal, NamedTuple

from venom.plugins.ledger.merkle import HashFn, MerkleTree, sha3_256
from venom.schemas import LedgerCorrupt, LedgerError

FRAME = struct.Struct("<II")
OFFSET = struct.Struct("<Q")
HASH_LEN = 32

#: The files of a ledger directory (the table above).
LOG_FILE = "entries.log"
INDEX_FILE = "entries.idx"
CHECKPOINT_FILE = "checkpoint"


def tree_file(level: int) -> str:
    """The file of the level-``level`` subtree hashes."""
    return f"tree.{level}"


class FrameDamage(NamedTuple):
    """Why a frame cannot be read: its ``header`` or its ``payload`` is cut short
    (``have`` of ``length`` bytes), or its payload fails the ``checksum``."""

    kind: Literal["header", "payload", "checksum"]
    have: int = 0
    length: int = 0


def read_frame(log: BinaryIO) -> bytes | FrameDamage:
    """The payload of the frame at ``log``'s position, checked (``log`` is left past it)."""
    head = log.read(FRAME.size)
    if len(head) < FRAME.size:
        return FrameDamage("header", len(head), FRAME.size)
    length, crc = FRAME.unpack(head)
    payload = log.read(length)
    if len(payload) < length:
        return FrameDamage("payload", len(payload), length)
    if zlib.crc32(payload) != crc:
        return FrameDamage("checksum", length, length)
    return payload


def frame_size(payload: bytes) -> int:
    """Bytes the frame of ``payload`` takes in the log, header included."""
    return FRAME.size + len(payload)


def read_offsets(path: Path, count: int) -> list[int]:
    """The first ``count`` frame offsets in the index file ``path`` (fewer if it is shorter)."""
    with open(path, "rb") as f:
        raw = f.read(count * OFFSET.size)
    return [o for (o,) in OFFSET.iter_unpack(raw[: len(raw) // OFFSET.size * OFFSET.size])]


def read_level_hashes(path: Path, count: int) -> list[bytes]:
    """The first ``count`` subtree hashes in the tree file ``path`` (fewer if it is shorter)."""
    with open(path, "rb") as f:
        data = f.read(count * HASH_LEN)
    return [data[k * HASH_LEN : (k + 1) * HASH_LEN] for k in range(len(data) // HASH_LEN)]


def read_checkpoint(path: Path) -> dict[str, object] | None:
    """The checkpoint's JSON object (None: no checkpoint); LedgerCorrupt when unreadable."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise LedgerCorrupt(f"{path}: unreadable checkpoint: {exc}") from exc
    if not isinstance(doc, dict):
        raise LedgerCorrupt(
            f"{path}: unreadable checkpoint: a JSON {type(doc).__name__}, not an object"
        )
    return doc


def vouched_size(path: Path) -> int:
    """Entries the index and tree files are known to hold on disk: the checkpoint's size.

    They are fsynced just before each checkpoint is written and only then,
    so past that size they may be short, or hold garbage after a crash.
    0 without a readable checkpoint.
    """
    try:
        doc = read_checkpoint(path)
    except LedgerCorrupt:
        return 0
    size = doc.get("size") if doc is not None else None
    return size if isinstance(size, int) and size > 0 else 0


def _fsync(fd: int, what: str) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise LedgerError(
            f"fsync of {what} failed: {exc}; stopping to avoid losing entries"
        ) from exc


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename or a new file in it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        _fsync(fd, str(path))
    finally:
        os.close(fd)


class LedgerStore:
    """Appends entries durably and serves them, the root and proofs."""

    def __init__(
        self, directory: Path, *, hash_fn: HashFn = sha3_256, readonly: bool = False
    ) -> None:
        """Open (creating unless ``readonly``) the ledger in ``directory``.

        Read-only opens change nothing on disk (safe beside a running ledger):
        a torn tail is ignored rather than truncated.
        """
        self.directory = Path(directory)
        self.hash_fn = hash_fn
        self.readonly = readonly
        if readonly and not (self.directory / LOG_FILE).exists():
            raise LedgerError(f"no ledger in {self.directory}")
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.log_path = self.directory / LOG_FILE
        self.idx_path = self.directory / INDEX_FILE
        self.checkpoint_path = self.directory / CHECKPOINT_FILE
        self.tree = MerkleTree(hash_fn)
        self.offsets: list[int] = []
        self.truncated_bytes = 0
        self._recover()
        self._tree_files: list[BinaryIO] = []
        if readonly:
            return
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - held for the store's life
        self._idx = open(self.idx_path, "ab")  # noqa: SIM115
        self._tree_files = [
            open(self._tree_path(h), "ab")  # noqa: SIM115
            for h in range(len(self.tree.levels))
        ]
        self._pending = 0
        self._derived_dirty = False

    # -- recovery -------------------------------------------------------

    def _tree_path(self, level: int) -> Path:
        return self.directory / tree_file(level)

    def _recover(self) -> None:
        """Read the index, validate the log's tail, rebuild what does not match."""
        log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
        durable = vouched_size(self.checkpoint_path)
        offsets: list[int] = []
        if self.idx_path.exists() and durable:
            offsets = read_offsets(self.idx_path, durable)
        # Keep index entries whose frames are complete, intact and back to back;
        # then scan the log on from there.
        with open(self.log_path, "rb" if self.readonly else "a+b") as log:
            valid: list[int] = []
            pos = 0
            for off in offsets:
                if off != pos:
                    break
                end = self._frame_ok(log, off, log_size)
                if end is None:
                    break
                valid.append(off)
                pos = end
            while pos < log_size:
                end = self._frame_ok(log, pos, log_size)
                if end is None:
                    break
                valid.append(pos)
                pos = end
            if pos < log_size:
                self.truncated_bytes = log_size - pos
                if not self.readonly:
                    log.truncate(pos)
                    _fsync(log.fileno(), str(self.log_path))
        self.offsets = valid
        trusted = min(durable, len(valid))
        if self.readonly:
            self._load_tree(len(valid), trusted)
            return
        with open(self.idx_path, "wb") as idx:
            idx.write(b"".join(OFFSET.pack(o) for o in valid))
            _fsync(idx.fileno(), str(self.idx_path))
        self._load_tree(len(valid), trusted)

    @staticmethod
    def _frame_ok(log: BinaryIO, offset: int, log_size: int) -> int | None:
        """End offset of an intact frame at ``offset`` (within ``log_size``), or None."""
        if offset + FRAME.size > log_size:
            return None
        log.seek(offset)
        (length, _) = FRAME.unpack(log.read(FRAME.size))
        if offset + FRAME.size + length > log_size:
            return None  # a torn or garbage length: do not read past the end
        log.seek(offset)
        payload = read_frame(log)
        return None if isinstance(payload, FrameDamage) else offset + frame_size(payload)

    def _load_tree(self, size: int, trusted: int) -> None:
        """Load the stored level hashes of the first ``trusted`` entries; the rest from the log."""
        levels: list[list[bytes]] = []
        h = 0
        while (trusted >> h) > 0:
            path = self._tree_path(h)
            want = trusted >> h
            data = b""
            if path.exists():
                with open(path, "rb") as f:
                    data = f.read(want * HASH_LEN)
            have = len(data) // HASH_LEN
            levels.append([data[i * HASH_LEN : (i + 1) * HASH_LEN] for i in range(have)])
            h += 1
        # Leaf hashes past what is stored for sure (entries after the last
        # checkpoint, or a lost file): recomputed from the log, never read.
        leaves = levels[0] if levels else []
        if len(leaves) < size:
            with open(self.log_path, "rb") as log:  # frames checked by _recover
                for i in range(len(leaves), size):
                    log.seek(self.offsets[i])
                    length, _ = FRAME.unpack(log.read(FRAME.size))
                    leaves.append(self.tree.leaf_hash(log.read(length)))
        levels = [leaves, *levels[1:]]
        tree = MerkleTree(self.hash_fn)
        for leaf in levels[0]:
            tree.append_leaf_hash(leaf)
        # Stored upper levels must agree with what the leaves give.
        for h in range(1, len(levels)):
            stored = levels[h]
            if tree.levels[h][: len(stored)] != stored:
                raise LedgerCorrupt(
                    f"stored subtree hashes of level {h} do not match the "
                    "entries; run `venom ledger verify`"
                )
        self.tree = tree
        if self.readonly:
            return
        for h, nodes in enumerate(tree.levels):
            with open(self._tree_path(h), "wb") as f:
                f.write(b"".join(nodes))
                _fsync(f.fileno(), str(self._tree_path(h)))
        h = len(tree.levels)
        while self._tree_path(h).exists():
            self._tree_path(h).unlink()
            h += 1

    # -- writing --------------------------------------------------------

    @property
    def size(self) -> int:
        return len(self.offsets)

    def append(self, entry: bytes) -> int:
        """Append one entry (not yet durable: call :meth:`sync`); return its index."""
        offset = self._log.tell()
        frame = FRAME.pack(len(entry), zlib.crc32(entry)) + entry
        self._log.write(frame)
        self._idx.write(OFFSET.pack(offset))
        self.offsets.append(offset)
        index = self.tree.append(entry)
        # The files hold every level whole (recovery rewrites them so); the new
        # leaf adds one hash to level 0 and one to each level whose subtree it
        # completes: levels 1..t, t the number of trailing one bits of index.
        levels, files = self.tree.levels, self._tree_files
        files[0].write(levels[0][-1])
        h, i = 0, index
        while i & 1:
            h += 1
            i >>= 1
            if h == len(files):
                files.append(open(self._tree_path(h), "ab"))  # noqa: SIM115
            files[h].write(levels[h][-1])
        self._pending += 1
        return index

    def sync(self) -> None:
        """Make every appended entry durable: fsync the log (only: see the module doc).

        The index and tree files are written through (readers see them) but
        fsynced by :meth:`checkpoint`; until then a crash may cut them, and
        the next open rebuilds them from the log.
        """
        if not self._pending:
            return
        for f in (self._log, self._idx, *self._tree_files):
            f.flush()
        _fsync(self._log.fileno(), str(self.log_path))
        self._pending = 0
        self._derived_dirty = True

    def checkpoint(self) -> dict[str, object]:
        """Write {size, root, time} atomically: tmp, fsync, rename, fsync dir.

        The log, the index and the tree files are fsynced first: the
        checkpoint's size is what recovery trusts them for.
        """
        self.sync()
        if self._derived_dirty:
            _fsync(self._idx.fileno(), str(self.idx_path))
            for tree_file in self._tree_files:
                _fsync(tree_file.fileno(), tree_file.name)
            self._derived_dirty = False
        doc = {"size": self.size, "root": self.tree.root().hex(), "time": time.time()}
        tmp = self.checkpoint_path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
            f.flush()
            _fsync(f.fileno(), str(tmp))
        os.replace(tmp, self.checkpoint_path)
        fsync_dir(self.directory)
        return doc

    def close(self) -> None:
        """Checkpoint and close the files."""
        if self.readonly:
            return
        try:
            self.checkpoint()
        finally:
            self.close_files()

    def close_files(self) -> None:
        """Close the files without syncing (after a fatal error)."""
        if self.readonly:
            return
        for f in (self._log, self._idx, *self._tree_files):
            f.close()

    def __enter__(self) -> LedgerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading --------------------------------------------------------

    def read(self, index: int, *, _offsets: list[int] | None = None) -> bytes:
        """Entry ``index``'s bytes (checksum checked)."""
        offsets = self.offsets if _offsets is None else _offsets
        if not 0 <= index < len(offsets):
            raise LedgerError(f"no entry {index}: the ledger holds {len(offsets)}")
        if not self.readonly and hasattr(self, "_log"):
            self._log.flush()
        with open(self.log_path, "rb") as log:
            log.seek(offsets[index])
            data = read_frame(log)
        if isinstance(data, FrameDamage):
            raise LedgerCorrupt(f"entry {index}: frame checksum mismatch")
        return data

    def read_checkpoint(self) -> dict[str, object] | None:
        """The checkpoint's JSON object (None: no checkpoint); LedgerCorrupt when unreadable."""
        return read_checkpoint(self.checkpoint_path)
