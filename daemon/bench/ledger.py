"""``venom bench ledger``: append, verify and proof speed of the ledger store.

- **append**: realistic beat records (~3 KB canonical JSON) through
  :class:`LedgerStore` with group commit (fsync every ``group_ms``), against
  raw ``os.write`` of frames of the same size with the same fsync policy in
  the same directory, in the same run;
- **verify**: ``verify_ledger`` over the file just written;
- **proof**: inclusion and consistency proofs in a tree of 1,000,000 leaves.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from venom.plugins.ledger.entry import GENESIS, canonical_record, make_entry
from venom.plugins.ledger.merkle import MerkleTree, verify_inclusion
from venom.plugins.ledger.store import FRAME, LedgerStore
from venom.plugins.ledger.verify import verify_ledger
from venom.schemas import (
    BeatRecord,
    Codec,
    CoreName,
    CoreReply,
    Decision,
    EstimateReply,
    GatherReport,
    Pulse,
    PulseContext,
)


def sample_record(beat: int) -> BeatRecord:
    """A beat record shaped like a full default run's (cores, estimators, plant)."""
    rng = random.Random(beat)
    names = [f"plugin-{i}" for i in range(3)]
    replies: dict[str, Any] = {
        n: EstimateReply(estimator=n, values={f"v{j}": rng.random() for j in range(6)})
        for n in names
    }
    cores: dict[str, CoreName] = {"regen": "R", "balance": "B", "entropy": "E", "optimize": "O"}
    for name, core in cores.items():
        replies[f"{name}-core"] = CoreReply(
            core=core, score=rng.random(), details={"a": rng.random(), "b": rng.random()}
        )
    features = {f"plant.f{j}": rng.random() * 100 for j in range(8)}
    return BeatRecord(
        beat=beat,
        pulse=Pulse(
            beat=beat,
            issued_at=1.7e9 + beat,
            deadline=1.7e9 + beat,
            t_lambda=0.0042,
            seed=rng.getrandbits(53),
            features=features,
            context=PulseContext(estimates={f"e{j}": rng.random() for j in range(20)}),
        ),
        replies=replies,
        report=GatherReport(
            beat=beat, expected=sorted(replies), replied={n: rng.random() / 1000 for n in replies}
        ),
        decision=Decision(beat=beat, action="STEADY", threat=rng.random()),
        trace_id=f"{rng.getrandbits(128):032x}",
        span_id=f"{rng.getrandbits(64):016x}",
    )


def bench_append(directory: Path, entries: int, group_ms: float) -> dict[str, float]:
    codec = Codec()
    bodies = [canonical_record(sample_record(b), codec) for b in range(1, 201)]
    size = statistics.mean(len(b) for b in bodies)
    store = LedgerStore(directory / "ledger")
    window = group_ms / 1000
    prev = GENESIS
    t0 = time.perf_counter()
    last_sync = t0
    syncs = 0
    for i in range(entries):
        index = store.append(make_entry(bodies[i % len(bodies)], prev, i + 1))
        prev = store.tree.levels[0][index]
        now = time.perf_counter()
        if now - last_sync >= window:
            store.sync()
            syncs += 1
            last_sync = now
    store.sync()
    elapsed = time.perf_counter() - t0
    store.close()

    raw_path = directory / "raw.log"
    frame = FRAME.pack(int(size), 0) + b"x" * int(size)
    fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    t1 = time.perf_counter()
    last_sync = t1
    try:
        for _ in range(entries):
            os.write(fd, frame)
            now = time.perf_counter()
            if now - last_sync >= window:
                os.fsync(fd)
                last_sync = now
        os.fsync(fd)
    finally:
        os.close(fd)
    raw_elapsed = time.perf_counter() - t1
    return {
        "entries": float(entries),
        "record_bytes": size,
        "append_per_s": entries / elapsed,
        "raw_per_s": entries / raw_elapsed,
        "syncs": float(syncs),
    }


def bench_verify(directory: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    report = verify_ledger(directory / "ledger")
    elapsed = time.perf_counter() - t0
    if not report.ok:
        raise RuntimeError(f"benchmark ledger failed to verify: {report.problem}")
    return {"verify_per_s": report.entries / elapsed}


def bench_proofs(leaves: int, samples: int = 2000) -> dict[str, float]:
    tree = MerkleTree()
    rng = random.Random(1)
    t0 = time.perf_counter()
    for i in range(leaves):
        tree.append(i.to_bytes(8, "big"))
    build = time.perf_counter() - t0
    root = tree.root()
    idx = [rng.randrange(leaves) for _ in range(samples)]
    t1 = time.perf_counter()
    proofs = [tree.inclusion_proof(i) for i in idx]
    prove = (time.perf_counter() - t1) / samples
    t2 = time.perf_counter()
    ok = all(
        verify_inclusion(i, leaves, tree.levels[0][i], p, root)
        for i, p in zip(idx, proofs, strict=True)
    )
    check = (time.perf_counter() - t2) / samples
    if not ok:
        raise RuntimeError("a benchmark proof failed to verify")
    t3 = time.perf_counter()
    for i in idx[:200]:
        tree.consistency_proof(max(1, i), leaves)
    cons = (time.perf_counter() - t3) / 200
    return {
        "leaves": float(leaves),
        "build_s": build,
        "prove_ms": prove * 1e3,
        "verify_ms": check * 1e3,
        "consistency_ms": cons * 1e3,
    }


def run_ledger_bench(
    entries: int = 20000, group_ms: float = 20.0, proof_leaves: int = 1_000_000
) -> dict[str, float]:
    """All three measurements; one flat dict of figures."""
    with TemporaryDirectory(prefix="venom-ledger-bench-", dir=".") as tmp:
        directory = Path(tmp)
        out = bench_append(directory, entries, group_ms)
        out.update(bench_verify(directory))
    out.update(bench_proofs(proof_leaves))
    out["group_ms"] = group_ms
    return out


def format_ledger_results(r: dict[str, float]) -> str:
    return "\n".join(
        [
            f"append  {r['append_per_s']:>10.0f} entries/s  (raw os.write {r['raw_per_s']:.0f}/s, "
            f"ratio {r['append_per_s'] / r['raw_per_s']:.2f}; {r['entries']:.0f} records of "
            f"{r['record_bytes']:.0f} B, fsync every {r['group_ms']:g} ms: {r['syncs']:.0f} syncs)",
            f"verify  {r['verify_per_s']:>10.0f} entries/s",
            f"proof   {r['prove_ms']:>10.4f} ms inclusion, {r['verify_ms']:.4f} ms to verify, "
            f"{r['consistency_ms']:.4f} ms consistency at {r['leaves']:.0f} leaves "
            f"(tree built in {r['build_s']:.1f} s)",
        ]
    )
