"""The ledger's files on a real filesystem: append, reopen, torn tail, tamper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from venom.plugins.ledger.merkle import root_of
from venom.plugins.ledger.store import FRAME, LedgerStore
from venom.schemas import LedgerCorrupt, LedgerError


def entries(n: int) -> list[bytes]:
    return [f'{{"beat":{i},"pad":"{"x" * (i % 50)}"}}'.encode() for i in range(n)]


def test_append_reopen_and_root(tmp_path: Path) -> None:
    data = entries(37)
    store = LedgerStore(tmp_path)
    for e in data:
        store.append(e)
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
    store = LedgerStore(tmp_path)
    for e in data:
        store.append(e)
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
    store = LedgerStore(tmp_path)
    for e in data:
        store.append(e)
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
