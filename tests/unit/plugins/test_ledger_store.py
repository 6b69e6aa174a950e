"""The ledger's files on a real filesystem: append, reopen, torn tail, tamper."""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import pytest

from venom.plugins.ledger.entry import GENESIS, entry_beat, entry_prev_hex, entry_seq, make_entry
from venom.plugins.ledger.merkle import root_of
from venom.plugins.ledger.store import FRAME, FrameDamage, LedgerStore, frame_size, read_frame
from venom.plugins.ledger.verify import verify_ledger
from venom.schemas import LedgerCorrupt, LedgerError


def entries(n: int) -> list[bytes]:
    return [f'{{"beat":{i},"pad":"{"x" * (i % 50)}"}}'.encode() for i in range(n)]


def filled(directory: Path, data: list[bytes]) -> LedgerStore:
    """A store in ``directory`` with ``data`` appended (not yet synced)."""
    store = LedgerStore(directory)
    for e in data:
        store.append(e)
    return store


def test_append_reopen_and_root(tmp_path: Path) -> None:
    data = entries(37)
    store = filled(tmp_path, data)
    store.sync()
    assert store.tree.root() == root_of(data)
    store.close()
    again = LedgerStore(tmp_path)
    assert again.size == 37
    assert again.read(36) == data[36]
    assert again.tree.root() == root_of(data)
    assert again.read_checkpoint()["size"] == 37  # type: ignore[index]
    again.append(b"one more")
    again.close()
    with LedgerStore(tmp_path) as third:
        assert third.tree.root() == root_of([*data, b"one more"])


@pytest.mark.parametrize("cut", [1, FRAME.size - 1, FRAME.size + 3])
def test_torn_tail_is_truncated(tmp_path: Path, cut: int) -> None:
    data = entries(10)
    store = filled(tmp_path, data)
    store.close()
    log = tmp_path / "entries.log"
    full = log.stat().st_size
    # A crash mid-write of an 11th frame: only part of it reached the disk.
    frame = FRAME.pack(len(b"x" * 40), 0) + b"x" * 40
    with open(log, "ab") as f:
        f.write(frame[:cut])
    with LedgerStore(tmp_path) as reopened:
        assert reopened.size == 10
        assert reopened.truncated_bytes == cut
        assert log.stat().st_size == full
        assert reopened.tree.root() == root_of(data)


def test_a_flipped_byte_in_a_frame_is_caught_on_read(tmp_path: Path) -> None:
    data = entries(5)
    store = filled(tmp_path, data)
    store.close()
    log = tmp_path / "entries.log"
    raw = bytearray(log.read_bytes())
    second = FRAME.size + len(data[0])
    raw[second + FRAME.size + 2] ^= 0x01
    log.write_bytes(bytes(raw))
    store = LedgerStore.__new__(LedgerStore)  # read without recovery
    store.offsets = [0, second]
    store.log_path = log
    store.readonly = True
    with pytest.raises(LedgerCorrupt, match="entry 1"):
        store.read(1)


def test_reading_past_the_end_names_the_size(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path)
    store.append(b"a")
    with pytest.raises(LedgerError, match="holds 1"):
        store.read(1)
    store.close()


def test_fsync_failure_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LedgerStore(tmp_path)
    store.append(b"a")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(LedgerError, match=r"fsync .* failed"):
        store.sync()
    store.close_files()


def crashed_after_sync(tmp_path: Path, checkpointed: int, total: int) -> list[bytes]:
    """A ledger checkpointed at ``checkpointed`` entries, synced at ``total``, then a crash."""
    data: list[bytes] = []
    store = LedgerStore(tmp_path)
    prev = GENESIS
    for i in range(total):
        if i == checkpointed:
            store.checkpoint()
        data.append(make_entry(f'{{"beat":{i + 1}}}'.encode(), prev, i + 1))
        prev = store.tree.levels[0][store.append(data[-1])]
    store.sync()  # durable: the log; the index and tree files are not fsynced
    store.close_files()  # the crash: no checkpoint
    return data


def test_group_commit_fsyncs_the_log_only_and_checkpoints_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LedgerStore(tmp_path)
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    for e in entries(9):
        store.append(e)
    store.sync()
    assert synced == ["entries.log"]
    store.sync()  # nothing new: nothing to do
    assert synced == ["entries.log"]
    synced.clear()
    store.checkpoint()
    assert synced[0] == "entries.idx"
    assert {f"tree.{h}" for h in range(4)} <= set(synced)
    assert "checkpoint.tmp" in synced
    store.close_files()


@pytest.mark.parametrize("damage", ["short", "garbage", "zeros", "missing"])
def test_index_and_tree_past_the_checkpoint_are_rebuilt_from_the_log(
    tmp_path: Path, damage: str
) -> None:
    data = crashed_after_sync(tmp_path, 20, 45)
    idx = tmp_path / "entries.idx"
    trees = sorted(tmp_path.glob("tree.*"))
    assert len(trees) == 6  # 45 entries: levels 0..5
    # What a crash may leave of files that were written but not fsynced.
    for path, width in [(idx, 8), *((t, 32) for t in trees)]:
        h = 0 if path == idx else int(path.suffix[1:])
        keep = (20 >> h) * width  # what the checkpoint vouches for
        raw = path.read_bytes()
        tail = len(raw) - keep
        if damage == "short":
            path.write_bytes(raw[: keep + tail // 2])
        elif damage == "garbage":
            path.write_bytes(raw[:keep] + bytes((i * 37 + 11) % 256 for i in range(tail + 50)))
        elif damage == "zeros":
            path.write_bytes(raw[:keep] + bytes(tail))
        elif h > 0 or path == idx:
            path.unlink()
    for readonly in (True, False):
        with LedgerStore(tmp_path, readonly=readonly) as store:
            assert store.size == 45
            assert store.tree.root() == root_of(data)
            assert [store.read(i) for i in range(45)] == data
    again = LedgerStore(tmp_path)
    assert again.tree.root() == root_of(data)
    assert (tmp_path / "entries.idx").stat().st_size == 45 * 8
    assert (tmp_path / "tree.0").stat().st_size == 45 * 32
    again.close()


def test_a_torn_log_tail_past_the_checkpoint_with_garbage_index(tmp_path: Path) -> None:
    data = crashed_after_sync(tmp_path, 8, 30)
    log = tmp_path / "entries.log"
    with open(log, "ab") as f:
        f.write(FRAME.pack(100, 0) + b"x" * 10)  # a frame the crash cut
    with open(tmp_path / "entries.idx", "r+b") as f:
        f.seek(8 * 8)
        f.write(b"\xff" * 8 * 40)
    with LedgerStore(tmp_path) as store:
        assert store.size == 30
        assert store.truncated_bytes == FRAME.size + 10
        assert store.tree.root() == root_of(data)


def test_no_checkpoint_means_nothing_but_the_log_is_trusted(tmp_path: Path) -> None:
    data = entries(12)
    store = filled(tmp_path, data)
    store.sync()
    store.close_files()
    (tmp_path / "tree.0").write_bytes(b"\x00" * 32 * 12)
    (tmp_path / "entries.idx").write_bytes(b"\x00" * 8 * 12)
    with LedgerStore(tmp_path) as again:
        assert again.tree.root() == root_of(data)
        assert again.read(11) == data[11]


def test_verify_judges_index_and_tree_up_to_the_checkpoint(tmp_path: Path) -> None:
    crashed_after_sync(tmp_path, 20, 45)
    tree0 = tmp_path / "tree.0"
    raw = tree0.read_bytes()
    tree0.write_bytes(raw[: 20 * 32] + b"\xee" * 32 * 3)  # torn past the checkpoint
    report = verify_ledger(tmp_path)
    assert not report.ok
    assert report.problem.startswith("checkpoint covers 20 entries but the log holds 45")
    tree0.write_bytes(raw[: 19 * 32] + b"\xee" * 32)  # damage the checkpoint vouched for
    report = verify_ledger(tmp_path)
    assert report.problem.startswith("stored subtree hash 19 of level 0"), report.problem


def test_tree_files_hold_every_level_as_appended(tmp_path: Path) -> None:
    data = entries(129)
    for n in (70, 71, 129):  # reopened each time; 128 opens a new level
        store = LedgerStore(tmp_path)
        for e in data[store.size : n]:
            store.append(e)
        store.sync()
        assert len(store.tree.levels) == n.bit_length()
        for h, level in enumerate(store.tree.levels):
            assert (tmp_path / f"tree.{h}").read_bytes() == b"".join(level), (n, h)
        assert store.tree.root() == root_of(data[:n])
        store.close()


def test_read_frame_returns_the_payload_or_says_what_is_wrong() -> None:
    payload = b'{"x":1}'
    frame = FRAME.pack(len(payload), zlib.crc32(payload)) + payload
    log = io.BytesIO(frame * 2)
    assert read_frame(log) == payload
    assert log.tell() == frame_size(payload) == len(frame)
    assert read_frame(io.BytesIO(frame[:5])) == FrameDamage("header", 5, FRAME.size)
    assert read_frame(io.BytesIO(frame[:-2])) == FrameDamage("payload", len(payload) - 2, 7)
    flipped = frame[:-1] + b"]"
    assert read_frame(io.BytesIO(flipped)) == FrameDamage("checksum", 7, 7)


def test_entry_fields_are_read_where_make_entry_puts_them() -> None:
    prev = bytes(range(32))
    entry = make_entry(b'{"beat":1,"seq":"not this one"}', prev, 42)
    assert entry_prev_hex(entry) == prev.hex().encode()
    assert entry_seq(entry) == 42
    assert entry_prev_hex(b'{"prev":"' + b"0" * 63) is None
    assert entry_prev_hex(entry.replace(b'{"prev"', b'{"prex"')) is None
    for bad in (entry[:-1], entry[:-3] + b"x}", make_entry(b"{}", prev, -1), b"{}"):
        assert entry_seq(bad) is None, bad
    assert entry_beat(entry) == 1
    assert entry_beat(make_entry(b'{"beat":2300}', prev, 1)) == 2300
    for bad in (b'{"action":1}', b'{"beat":0}', b'{"beat":-3}', b'{"beat":"7"}'):
        assert entry_beat(make_entry(bad, prev, 1)) is None, bad
