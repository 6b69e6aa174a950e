"""Failover of HA arbiters (SPEC 2.6, issue 14 point 9): takeover gaps, and what HA costs.

    python -m tests.bench.bench_failover [--kills 20] [--cluster] [--window 10] [--rounds 2]

Real processes on loopback (tests/hacluster.py): a nats-server with
JetStream (``--cluster``: three, routed, the beat stream at 3 replicas),
one `venom plugin run` with the default plugins and the ledger,
and `venom run` arbiters with ``[ha] enabled`` and the defaults (T_Λ,
``takeover_after`` = 5 · T_Λ). Each round kills the leader with SIGKILL
once a standby follows it, then starts a new standby. At the end the
ledger is read back: its beats must be 1..N, each once; each change of
epoch is a takeover, and its gap is the time between the pulses of the
old leader's last beat and the new leader's first.

Then the cost of HA: one arbiter, back to back, with ``[ha]`` off and on
(alternating, ``--rounds`` each), beats per second over ``--window``
seconds from ``venom status``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.hacluster import Cluster, kill_leader, leader_at, ledger_records, nats_cluster
from tests.helpers import stop, wait_for
from venom.daemon.bus.embedded import NatsServerProcess
from venom.daemon.config.settings import DEFAULT_PLUGINS
from venom.schemas import BeatRecord


def failover(tmp: Path, kills: int, cluster: bool = False) -> dict[str, Any]:
    with contextlib.ExitStack() as servers:
        if cluster:
            nodes = servers.enter_context(nats_cluster(tmp))
            url, replicas = ",".join(n.url for n in nodes), 3
        else:
            server = NatsServerProcess(tmp / "nats", jetstream=True)
            url, replicas = server.start(), 1
            servers.callback(server.stop)
        records = _kill_leaders(
            Cluster(tmp, url, period="# T_L", ha="enabled = true", replicas=replicas), kills
        )
    return _gaps(records, kills)


def _kill_leaders(c: Cluster, kills: int) -> list[BeatRecord]:
    try:
        c.plugins()
        live = [c.arbiter(0)]
        lead = leader_at(c, 100)
        live.append(c.arbiter(1))
        for n in range(kills):
            lead = kill_leader(c, live, 2 + n)
        leader_at(c, int(lead["beat"]) + 100)
        for proc in (*live, c.procs[0]):
            stop(proc, c.logs[proc.pid])
        return ledger_records(c.plugins_state)
    finally:
        c.close()


def _gaps(records: list[BeatRecord], kills: int) -> dict[str, Any]:
    beats = [r.beat for r in records]
    changes = [i for i in range(1, len(records)) if records[i].epoch != records[i - 1].epoch]
    gaps = [(records[i].pulse.issued_at - records[i - 1].pulse.issued_at) * 1e3 for i in changes]
    return {
        "kills": kills,
        "beats": len(beats),
        "contiguous": beats == list(range(1, len(beats) + 1)),
        "takeovers": len(gaps),
        "gap_p50_ms": round(statistics.median(gaps), 1) if gaps else None,
        "gap_max_ms": round(max(gaps), 1) if gaps else None,
        "gaps_ms": [round(g, 1) for g in gaps],
        "period_ms": round(records[-1].pulse.t_lambda * 1e3, 3) if records else None,
    }


def rate(tmp: Path, ha: bool, window: float) -> float:
    server = NatsServerProcess(tmp / "nats", jetstream=True)
    url = server.start()
    c = Cluster(tmp, url, period="period = 0", ha=f"enabled = {'true' if ha else 'false'}")
    try:
        c.plugins()
        arbiter = c.arbiter(0)
        leader_at(c, 200)
        every = len(DEFAULT_PLUGINS)
        wait_for(lambda: len(c.status().get("plugins", [])) >= every, what="every plugin")
        start = leader_at(c, 200)
        t0 = time.monotonic()
        time.sleep(window)
        end = c.status()
        t1 = time.monotonic()
        stop(arbiter, c.logs[arbiter.pid])
        stop(c.procs[0], c.logs[c.procs[0].pid])
    finally:
        c.close()
        server.stop()
    return (int(end["beat"]) - int(start["beat"])) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--cluster", action="store_true", help="on a 3-node cluster, stream at R3")
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="venom-failover-") as tmp:
        if args.kills:
            print(json.dumps(failover(Path(tmp) / "failover", args.kills, args.cluster)))
        for r in range(args.rounds):
            for ha in (False, True):
                beats = rate(Path(tmp) / f"rate-{r}-{ha}", ha, args.window)
                print(json.dumps({"round": r, "ha": ha, "beats_per_s": round(beats, 1)}))


if __name__ == "__main__":
    main()
