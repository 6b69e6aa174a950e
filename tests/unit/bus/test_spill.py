"""The spill file: preallocated, appended, read back after a restart, bounded."""

from __future__ import annotations

import os
from pathlib import Path

from venom.daemon.bus.spill import Spill, Spilled, continuation


def _records(first: int, last: int, size: int = 100) -> list[Spilled]:
    return [
        Spilled(b, f"e1.{b}", f"e1.{b - 1}" if b > 1 else "", bytes([b % 256]) * size)
        for b in range(first, last + 1)
    ]


def test_made_at_full_size_and_read_back_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "beats.spill"
    spill = Spill(path, 1 << 20)
    assert spill.open() == []
    assert path.stat().st_size == 1 << 20
    assert path.stat().st_blocks * 512 >= 1 << 20  # the blocks are there: no ENOSPC later
    assert path.stat().st_mode & 0o777 == 0o600
    assert spill.write(_records(5, 9)) == 5
    assert spill.write(_records(10, 12)) == 3
    spill.close()
    again = Spill(path, 1 << 20)
    found = again.open()
    assert found == _records(5, 12)
    assert (again.first, again.last, again.beats) == (5, 12, 8)
    again.close()


def test_clear_forgets_everything_at_once(tmp_path: Path) -> None:
    spill = Spill(tmp_path / "s", 1 << 20)
    spill.open()
    spill.write(_records(1, 50))
    spill.clear()
    assert (spill.beats, spill.last) == (0, 0)
    spill.write(_records(51, 52))
    spill.close()
    again = Spill(tmp_path / "s", 1 << 20)
    assert [r.beat for r in again.open()] == [51, 52]  # not the old generation's 3..50


def test_a_torn_frame_ends_what_is_read(tmp_path: Path) -> None:
    path = tmp_path / "s"
    spill = Spill(path, 1 << 20)
    spill.open()
    spill.write(_records(1, 3))
    end = spill.capacity - spill.free
    spill.close()
    with path.open("r+b") as f:  # the last frame's last byte changes
        f.seek(end - 1)
        f.write(b"\xff")
    assert [r.beat for r in Spill(path, 1 << 20).open()] == [1, 2]


def test_bounded_it_takes_what_fits(tmp_path: Path) -> None:
    spill = Spill(tmp_path / "s", 64 * 1024)
    spill.open()
    written = spill.write(_records(1, 100, size=3000))
    assert 0 < written < 100
    assert spill.last == written
    assert spill.write(_records(written + 1, written + 1, size=3000)) == 0
    assert os.path.getsize(tmp_path / "s") == 64 * 1024


def test_continuation_keeps_what_continues_the_stream() -> None:
    found = _records(5, 9)
    assert continuation(found, 4, "e1.4") == (found, "")
    assert continuation(found, 7, "e1.7") == (found[3:], "")  # 5..7 were stored
    assert continuation(found, 9, "e1.9") == ([], "")
    kept, why = continuation(found, 4, "e2.4")  # another arbiter wrote beat 4
    assert kept == []
    assert "do not continue" in why
    kept, why = continuation(found, 2, "e1.2")  # beats 3 and 4 are missing
    assert kept == []
    assert why
