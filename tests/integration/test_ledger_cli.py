"""venom ledger commands on a ledger written by the store (real files, real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from venom.plugins.ledger.entry import GENESIS, canonical_record, make_entry
from venom.plugins.ledger.store import FRAME, LedgerStore
from venom.schemas import BeatRecord, Codec, Decision, GatherReport, Pulse

VENOM = [sys.executable, "-m", "venom.daemon"]


def venom(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VENOM, *args], capture_output=True, text=True, timeout=60, check=False, input=stdin
    )


def record(beat: int) -> BeatRecord:
    return BeatRecord(
        beat=beat,
        pulse=Pulse(
            beat=beat,
            issued_at=1.0e9 + beat,
            deadline=1.0e9 + beat,
            t_lambda=0.004,
            seed=beat,
            features={"plant.t": 40.0 + beat / 100},
        ),
        report=GatherReport(beat=beat, replied={"regen-core": 0.0003}),
        decision=Decision(beat=beat, action="STEADY"),
        trace_id=f"{beat:032x}",
        span_id=f"{beat:016x}",
    )


def write_ledger(state: Path, n: int) -> LedgerStore:
    codec = Codec()
    store = LedgerStore(state / "plugins" / "ledger")
    prev = GENESIS
    for beat in range(1, n + 1):
        i = store.append(make_entry(canonical_record(record(beat), codec), prev, beat))
        prev = store.tree.levels[0][i]
    store.close()
    return store


@pytest.fixture
def state(tmp_path: Path) -> Path:
    write_ledger(tmp_path, 100)
    return tmp_path


def test_head_show_export_verify(state: Path) -> None:
    head = json.loads(venom("ledger", "head", "--json", "--state-dir", str(state)).stdout)
    assert head["size"] == 100
    assert head["checkpoint"]["root"] == head["root"]
    show = venom("ledger", "show", "41", "--state-dir", str(state))
    assert show.returncode == 0, show.stderr
    doc = json.loads(show.stdout)
    assert doc["record"]["beat"] == 42
    assert doc["trace_id"] == f"{42:032x}"
    export = venom("ledger", "export", "--state-dir", str(state)).stdout.splitlines()
    assert len(export) == 100
    line = json.loads(export[7])
    assert (line["index"], line["record"]["beat"]) == (7, 8)
    assert len(line["hash"]) == 64
    ok = venom("ledger", "verify", "--state-dir", str(state))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: 100 entries")


def test_prove_and_check_proof(state: Path, tmp_path: Path) -> None:
    proof = venom("ledger", "prove", "17", "--size", "60", "--state-dir", str(state))
    assert proof.returncode == 0, proof.stderr
    assert venom("ledger", "check-proof", "-", stdin=proof.stdout).returncode == 0
    doc = json.loads(proof.stdout)
    doc["proof"][0] = ("0" if doc["proof"][0][0] != "0" else "1") + doc["proof"][0][1:]
    bad = venom("ledger", "check-proof", "-", stdin=json.dumps(doc))
    assert bad.returncode == 1
    assert "does NOT verify" in bad.stderr
    cons = venom("ledger", "consistency", "10", "100", "--state-dir", str(state))
    assert venom("ledger", "check-proof", "-", stdin=cons.stdout).returncode == 0
    out = venom("ledger", "prove", "100", "--state-dir", str(state))
    assert out.returncode == 1
    assert "leaf index 100" in out.stderr


def test_any_flipped_byte_fails_verify_and_names_the_entry(state: Path) -> None:
    log = state / "plugins" / "ledger" / "entries.log"
    original = log.read_bytes()
    offsets = []
    pos = 0
    while pos < len(original):
        (length, _) = FRAME.unpack_from(original, pos)
        offsets.append(pos)
        pos += FRAME.size + length
    for target_entry, delta in ((0, 3), (57, 200), (99, FRAME.size + 20), (33, 1)):
        damaged = bytearray(original)
        damaged[offsets[target_entry] + delta] ^= 0x20
        log.write_bytes(bytes(damaged))
        res = venom("ledger", "verify", "--state-dir", str(state))
        assert res.returncode == 1, (target_entry, delta)
        assert f"entry {target_entry}" in res.stderr, res.stderr
    log.write_bytes(original)
    assert venom("ledger", "verify", "--state-dir", str(state)).returncode == 0


def test_forged_entry_with_a_valid_checksum_fails(state: Path) -> None:
    codec = Codec()
    # Appended with a correct frame, the correct chain link and the next beat
    # number: only the checkpoint can tell, and it does.
    store = LedgerStore(state / "plugins" / "ledger", readonly=True)
    prev = store.tree.levels[0][-1]
    log = state / "plugins" / "ledger" / "entries.log"
    clean = log.read_bytes()
    forged = make_entry(canonical_record(record(101), codec), prev, 999)
    with open(log, "ab") as f:
        f.write(FRAME.pack(len(forged), zlib.crc32(forged)) + forged)
    res = venom("ledger", "verify", "--state-dir", str(state))
    assert res.returncode == 1
    assert "checkpoint covers 100 entries but the log holds 101" in res.stderr
    # A replayed beat, or one that skips ahead, is named by its entry.
    for beat, what in ((50, "repeats"), (999, "skips")):
        log.write_bytes(clean)
        forged = make_entry(canonical_record(record(beat), codec), prev, 999)
        with open(log, "ab") as f:
            f.write(FRAME.pack(len(forged), zlib.crc32(forged)) + forged)
        res = venom("ledger", "verify", "--state-dir", str(state))
        assert res.returncode == 1
        assert f"entry 100: beat {beat} {what} (the entry before holds beat 100)" in res.stderr
    log.write_bytes(clean)
    # Forged in the middle (re-chained from there on would need every later entry rewritten).
    data = log.read_bytes()
    first_len = FRAME.unpack_from(data, 0)[0]
    entry0 = data[FRAME.size : FRAME.size + first_len].replace(b'"beat":1,', b'"beat":7,', 1)
    frame0 = FRAME.pack(len(entry0), zlib.crc32(entry0)) + entry0
    log.write_bytes(frame0 + data[FRAME.size + first_len :])
    res = venom("ledger", "verify", "--state-dir", str(state))
    assert res.returncode == 1
    assert "entry 1: hash chain broken" in res.stderr
