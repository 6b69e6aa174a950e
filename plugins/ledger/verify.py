"""``venom ledger verify``: recompute the chain, the tree and the checkpoint from the file.

Reads ``entries.log`` front to back (not through the index), so damage
anywhere is found (integrity, not schema: ``show`` and ``export`` decode
records fully): a frame cut short or failing its CRC, an entry that is
not a valid ledger entry, a broken hash chain, a stream sequence that does
not increase, an index or stored subtree hash that disagrees with the log
(up to the checkpoint's size: past it those files are not yet fsynced, and
the store rebuilds them from the log on open), and a checkpoint whose size
or root does not match. The first problem is reported with the entry it is
in.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from venom.plugins.ledger.entry import GENESIS
from venom.plugins.ledger.merkle import HashFn, MerkleTree, sha3_256
from venom.plugins.ledger.store import FRAME, HASH_LEN, OFFSET

Progress = Callable[[int, int], None]
_PREFIX = b'{"prev":"'


_SEQ = b',"seq":'


@dataclass
class VerifyReport:
    """What verification found. ``bad_entry`` is None when the damage is not in an entry."""

    entries: int
    root: str
    ok: bool
    problem: str = ""
    bad_entry: int | None = None
    checkpoint_size: int | None = None


def verify_ledger(
    directory: Path,
    *,
    hash_fn: HashFn = sha3_256,
    progress: Progress | None = None,
    every: int = 100_000,
) -> VerifyReport:
    """Verify the ledger in ``directory``; never raises for damage, reports it."""
    log_path = directory / "entries.log"
    total = log_path.stat().st_size
    tree = MerkleTree(hash_fn)
    prev_hex = GENESIS.hex().encode()
    last_seq = -1
    offsets: list[int] = []

    def fail(problem: str, index: int | None) -> VerifyReport:
        return VerifyReport(tree.size, tree.root().hex(), False, problem, index)

    with open(log_path, "rb", buffering=1 << 20) as log:
        pos = 0
        i = 0
        while pos < total:
            head = log.read(FRAME.size)
            if len(head) < FRAME.size:
                return fail(f"entry {i}: frame header cut short at byte {pos}", i)
            length, crc = FRAME.unpack(head)
            payload = log.read(length)
            if len(payload) < length:
                return fail(
                    f"entry {i}: frame cut short at byte {pos} ({len(payload)} of {length} bytes)",
                    i,
                )
            if zlib.crc32(payload) != crc:
                return fail(f"entry {i}: checksum mismatch (frame at byte {pos})", i)
            if not payload.startswith(_PREFIX) or payload[73:76] != b'","':
                return fail(f"entry {i}: not a ledger entry (frame at byte {pos})", i)
            if payload[9:73] != prev_hex:
                return fail(
                    f"entry {i}: hash chain broken: prev is {payload[9:73].decode()!r}, "
                    f"the previous entry hashes to {prev_hex.decode()!r}",
                    i,
                )
            cut = payload.rfind(_SEQ)
            try:
                seq = int(payload[cut + len(_SEQ) : -1]) if cut > 0 else -1
            except ValueError:
                seq = -1
            if seq < 0 or payload[-1:] != b"}":
                return fail(f"entry {i}: not a ledger entry (no stream sequence)", i)
            if seq <= last_seq:
                return fail(
                    f"entry {i}: stream sequence {seq} does not increase (previous {last_seq})",
                    i,
                )
            last_seq = seq
            tree.append(payload)
            prev_hex = tree.levels[0][-1].hex().encode()
            offsets.append(pos)
            pos += FRAME.size + length
            i += 1
            if progress is not None and i % every == 0:
                progress(i, pos)
    if progress is not None:
        progress(tree.size, total)

    # The index and tree files are fsynced at each checkpoint: they must match
    # the log up to its size; past it a crash may have left them short or torn.
    vouched = _checkpoint_size(directory / "checkpoint")
    idx_path = directory / "entries.idx"
    if idx_path.exists():
        raw = idx_path.read_bytes()[: vouched * OFFSET.size]
        stored = [o for (o,) in OFFSET.iter_unpack(raw[: len(raw) // 8 * 8])]
        for k, (a, b) in enumerate(zip(stored, offsets, strict=False)):
            if a != b:
                return fail(f"index: entry {k} points at byte {a}, the log has it at {b}", k)
    for h, level in enumerate(tree.levels):
        path = directory / f"tree.{h}"
        if not path.exists():
            continue
        data = path.read_bytes()[: (vouched >> h) * HASH_LEN]
        for k in range(min(len(data) // HASH_LEN, len(level))):
            if data[k * HASH_LEN : (k + 1) * HASH_LEN] != level[k]:
                first = k << h
                return fail(
                    f"stored subtree hash {k} of level {h} (entries {first}.."
                    f"{first + (1 << h) - 1}) does not match the entries",
                    first,
                )
    cp_path = directory / "checkpoint"
    if not cp_path.exists():
        return fail("no checkpoint: the ledger never closed cleanly or checkpointed", None)
    try:
        cp = json.loads(cp_path.read_text())
        cp_size, cp_root = int(cp["size"]), str(cp["root"])
    except (ValueError, KeyError, TypeError) as exc:
        return fail(f"checkpoint is unreadable: {exc}", None)
    report = fail("", None)
    report.checkpoint_size = cp_size
    if cp_size != tree.size:
        report.problem = f"checkpoint covers {cp_size} entries but the log holds {tree.size}" + (
            " (entries past the checkpoint are not vouched for)" if tree.size > cp_size else ""
        )
        report.bad_entry = min(cp_size, tree.size)
        return report
    if tree.root().hex() != cp_root:
        report.problem = f"checkpoint root {cp_root} does not match the entries' root"
        return report
    report.ok = True
    return report


def _checkpoint_size(path: Path) -> int:
    """The checkpoint's size, 0 without a readable one."""
    try:
        size = json.loads(path.read_text())["size"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return size if isinstance(size, int) and size > 0 else 0
