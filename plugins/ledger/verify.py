"""``venom ledger verify``: recompute the chain, the tree and the checkpoint from the file.

Reads ``entries.log`` front to back (not through the index), so damage
anywhere is found (integrity, not schema: ``show`` and ``export`` decode
records fully): a frame cut short or failing its CRC, an entry that is
not a valid ledger entry, a broken hash chain, a stream sequence that does
not increase, a beat number that does not follow the one before (a repeat
or a gap), an index or stored subtree hash that disagrees with the log
(up to the checkpoint's size: past it those files are not yet fsynced, and
the store rebuilds them from the log on open), and a checkpoint whose size
or root does not match. The first problem is reported with the entry it is
in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from venom.plugins.ledger.entry import GENESIS, entry_beat, entry_prev_hex, entry_seq
from venom.plugins.ledger.merkle import HashFn, MerkleTree, sha3_256
from venom.plugins.ledger.store import (
    CHECKPOINT_FILE,
    INDEX_FILE,
    LOG_FILE,
    FrameDamage,
    frame_size,
    read_checkpoint,
    read_frame,
    read_level_hashes,
    read_offsets,
    tree_file,
    vouched_size,
)
from venom.schemas import LedgerCorrupt

Progress = Callable[[int, int], None]


@dataclass
class VerifyReport:
    """What verification found. ``bad_entry`` is None when the damage is not in an entry."""

    entries: int
    root: str
    ok: bool
    problem: str = ""
    bad_entry: int | None = None
    checkpoint_size: int | None = None


class _Damage(Exception):
    """The first problem found, and the entry it is in (None: not in an entry)."""

    def __init__(self, problem: str, entry: int | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.entry = entry


def verify_ledger(
    directory: Path,
    *,
    hash_fn: HashFn = sha3_256,
    progress: Progress | None = None,
    every: int = 100_000,
) -> VerifyReport:
    """Verify the ledger in ``directory``; never raises for damage, reports it."""
    tree = MerkleTree(hash_fn)
    try:
        offsets = _check_log(directory / LOG_FILE, tree, progress, every)
        # The index and tree files are fsynced at each checkpoint: they must match
        # the log up to its size; past it a crash may have left them short or torn.
        vouched = vouched_size(directory / CHECKPOINT_FILE)
        _check_index(directory / INDEX_FILE, offsets, vouched)
        _check_tree_files(directory, tree, vouched)
        cp_size, cp_root = _read_checkpoint(directory / CHECKPOINT_FILE)
    except _Damage as damage:
        return VerifyReport(tree.size, tree.root().hex(), False, damage.problem, damage.entry)
    return _judge_checkpoint(tree, cp_size, cp_root)


def _check_log(
    log_path: Path, tree: MerkleTree, progress: Progress | None, every: int
) -> list[int]:
    """Check every frame and entry of the log, appending each to ``tree``; their offsets."""
    total = log_path.stat().st_size
    prev_hex = GENESIS.hex().encode()
    last_seq = -1
    last_beat = 0
    offsets: list[int] = []
    with open(log_path, "rb", buffering=1 << 20) as log:
        pos = 0
        i = 0
        while pos < total:
            payload = read_frame(log)
            if isinstance(payload, FrameDamage):
                raise _Damage(_frame_problem(payload, i, pos), i)
            last_seq = _check_entry(payload, i, pos, prev_hex, last_seq)
            last_beat = _check_beat(payload, i, last_beat)
            tree.append(payload)
            prev_hex = tree.levels[0][-1].hex().encode()
            offsets.append(pos)
            pos += frame_size(payload)
            i += 1
            if progress is not None and i % every == 0:
                progress(i, pos)
    if progress is not None:
        progress(tree.size, total)
    return offsets


def _frame_problem(damage: FrameDamage, i: int, pos: int) -> str:
    """What is wrong with entry ``i``'s frame, at byte ``pos``."""
    if damage.kind == "header":
        return f"entry {i}: frame header cut short at byte {pos}"
    if damage.kind == "payload":
        return f"entry {i}: frame cut short at byte {pos} ({damage.have} of {damage.length} bytes)"
    return f"entry {i}: checksum mismatch (frame at byte {pos})"


def _check_entry(payload: bytes, i: int, pos: int, prev_hex: bytes, last_seq: int) -> int:
    """Check entry ``i`` chains to ``prev_hex`` and its sequence increases; the sequence."""
    prev = entry_prev_hex(payload)
    if prev is None:
        raise _Damage(f"entry {i}: not a ledger entry (frame at byte {pos})", i)
    if prev != prev_hex:
        raise _Damage(
            f"entry {i}: hash chain broken: prev is {prev.decode()!r}, "
            f"the previous entry hashes to {prev_hex.decode()!r}",
            i,
        )
    seq = entry_seq(payload)
    if seq is None:
        raise _Damage(f"entry {i}: not a ledger entry (no stream sequence)", i)
    if seq <= last_seq:
        raise _Damage(
            f"entry {i}: stream sequence {seq} does not increase (previous {last_seq})", i
        )
    return seq


def _check_beat(payload: bytes, i: int, last_beat: int) -> int:
    """Entry ``i``'s beat must follow ``last_beat`` (0: the first entry, any beat); the beat."""
    beat = entry_beat(payload)
    if beat is None:
        raise _Damage(f"entry {i}: not a beat record (no beat number)", i)
    if last_beat and beat != last_beat + 1:
        what = "repeats" if beat <= last_beat else "skips"
        raise _Damage(f"entry {i}: beat {beat} {what} (the entry before holds beat {last_beat})", i)
    return beat


def _check_index(idx_path: Path, offsets: list[int], vouched: int) -> None:
    """The index's first ``vouched`` offsets must be the log's (no index: nothing to check)."""
    if not idx_path.exists():
        return
    stored = read_offsets(idx_path, vouched)
    for k, (a, b) in enumerate(zip(stored, offsets, strict=False)):
        if a != b:
            raise _Damage(f"index: entry {k} points at byte {a}, the log has it at {b}", k)


def _check_tree_files(directory: Path, tree: MerkleTree, vouched: int) -> None:
    """Each tree file's hashes of the first ``vouched`` entries must be the entries'."""
    for h, level in enumerate(tree.levels):
        path = directory / tree_file(h)
        if not path.exists():
            continue
        stored = read_level_hashes(path, vouched >> h)
        for k, (a, b) in enumerate(zip(stored, level, strict=False)):
            if a != b:
                first = k << h
                raise _Damage(
                    f"stored subtree hash {k} of level {h} (entries {first}.."
                    f"{first + (1 << h) - 1}) does not match the entries",
                    first,
                )


def _read_checkpoint(cp_path: Path) -> tuple[int, str]:
    """The checkpoint's size and root; damage when it is missing or unreadable."""
    if not cp_path.exists():
        raise _Damage("no checkpoint: the ledger never closed cleanly or checkpointed", None)
    try:
        cp: dict[str, Any] = read_checkpoint(cp_path) or {}
    except LedgerCorrupt as exc:
        raise _Damage(str(exc), None) from exc
    try:
        return int(cp["size"]), str(cp["root"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _Damage(f"checkpoint is unreadable: {exc}", None) from exc


def _judge_checkpoint(tree: MerkleTree, cp_size: int, cp_root: str) -> VerifyReport:
    """The report once the files check out: ok when the checkpoint names the log's size and root."""
    report = VerifyReport(tree.size, tree.root().hex(), False, checkpoint_size=cp_size)
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
