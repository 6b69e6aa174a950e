"""A 3-node NATS cluster under the daemon (SPEC 2.6): HA arbiters, a node that dies.

Three nats-servers with JetStream on loopback, routed into one cluster; the
beat stream at 3 replicas. venom's processes connect to all three.

(a) Two HA arbiters, one `venom plugin run` with the default plugins and
    the ledger: the leader is killed with SIGKILL five times in a row, each
    time a new standby is started; the ledger holds beats 1..N once each,
    and the takeover gaps are measured.
(b) One daemon: the node that leads the stream is killed and started
    again: beats are held while JetStream elects a new stream leader, then
    resume by themselves, and the ledger holds every beat once.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import nats
import pytest

from tests.hacluster import (
    LIGHT_PLUGINS,
    Cluster,
    kill_leader,
    leader_at,
    leader_entry,
    ledger_records,
    nats_cluster,
    settled,
    standby_epoch,
)
from tests.helpers import spawn, stop, venom, wait_beat, wait_for
from venom.daemon.bus.embedded import NatsServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsServerProcess]]:
    with nats_cluster(tmp_path) as nodes:
        yield nodes


def _ledger_size(url: str) -> int:
    """The size in the ledger's next head (0 when none comes within 5 s)."""

    async def head() -> int:
        nc = await nats.connect(servers=url.split(","))
        try:
            sub = await nc.subscribe("venom.ledger.head")
            msg = await sub.next_msg(timeout=5.0)
            return int(json.loads(msg.data)["size"])
        except Exception:
            return 0
        finally:
            await nc.close()

    return anyio.run(head)


def _stream_leader(url: str) -> str:
    """The server name that leads VENOM_BEATS ("" while none does)."""

    async def ask() -> str:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info("VENOM_BEATS")
            return str(info.cluster.leader) if info.cluster and info.cluster.leader else ""
        except Exception:
            return ""
        finally:
            await nc.close()

    return anyio.run(ask)


KILLS = 5


@pytest.mark.timeout(900)
def test_kill_the_leader_five_times_and_a_standby_goes_on_each_time(
    cluster: list[NatsServerProcess], tmp_path: Path
) -> None:
    urls = ",".join(node.url for node in cluster)
    c = Cluster(tmp_path, urls, replicas=3)
    try:
        c.plugins()
        live = [c.arbiter(0)]
        lead = leader_at(c, 30)
        live.append(c.arbiter(1))
        for n in range(KILLS):
            leader, epoch = settled(c, live)
            # `venom status --arbiter` asks one arbiter: a standby says whom it follows.
            (other,) = (p for p in live if p is not leader)
            follower = c.status(standby_epoch(c, other))
            assert (follower["role"], follower["leader"]) == ("standby", epoch)
            lead = kill_leader(c, live, 2 + n)
        _, epoch = settled(c, live)
        leader_at(c, int(lead["beat"]) + 30)
        # The leader entry of the VENOM_HA bucket names it (it decides nothing).
        wait_for(
            lambda: leader_entry(cluster[0].url).get("epoch") == epoch, what="the VENOM_HA entry"
        )
        for proc in (*live, c.procs[0]):
            rc, err = stop(proc, c.logs[proc.pid])
            assert rc == 0, err[-3000:]
    finally:
        c.close()
    records = ledger_records(c.plugins_state)
    beats = [r.beat for r in records]
    assert beats == list(range(1, len(beats) + 1))  # each beat once, none skipped
    epochs = [r.epoch for r in records]
    changes = [i for i in range(1, len(records)) if epochs[i] != epochs[i - 1]]
    assert len(changes) >= KILLS, changes
    gaps = sorted(records[i].pulse.issued_at - records[i - 1].pulse.issued_at for i in changes)
    print(
        f"takeover gaps over {len(gaps)} changes, ms: p50 {gaps[len(gaps) // 2] * 1e3:.1f}, "
        f"max {gaps[-1] * 1e3:.1f}; all: {[round(g * 1e3, 1) for g in gaps]}"
    )
    assert all(g < 30 for g in gaps)  # a generous bound: the figures go in the note
    out = venom("ledger", "verify", "--state-dir", str(c.plugins_state))
    assert out.returncode == 0, out.stderr


def test_a_cluster_node_dies_and_the_beat_resumes_with_nothing_lost(
    cluster: list[NatsServerProcess], tmp_path: Path
) -> None:
    urls = ",".join(node.url for node in cluster)
    config = tmp_path / "venom.toml"
    config.write_text(
        f'[nats]\nurl = "{urls}"\nstream_replicas = 3\n'
        "[beat]\nperiod = 0.01\n"
        f"[plugins]\nrun = {json.dumps(LIGHT_PLUGINS)}\n"
        "[plugins.settings.ledger]\nreplicas = 3\n"
    )
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    daemon = spawn("run", "--no-live", "--config", str(config), "--state-dir", str(state), log=log)
    try:
        wait_for(lambda: _ledger_size(urls) > 0, what="the ledger to append")
        before = wait_beat(urls, 200)
        wait_for(lambda: bool(_stream_leader(cluster[0].url)), what="a stream leader")
        leader = _stream_leader(cluster[0].url)
        victim = next(n for n in cluster if f"n{cluster.index(n)}" == leader)
        victim.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        victim.process.wait()  # type: ignore[union-attr]
        killed = time.monotonic()
        after = wait_beat(urls, before + 150)
        print(f"beats going again {time.monotonic() - killed:.1f} s after the kill of {leader}")
        victim.port = victim.bound_port
        victim.stop()  # its pid file and ports dir; the process is gone
        victim.start()
        last = wait_beat(urls, after + 100)
        wait_for(lambda: _ledger_size(urls) >= last, what="the ledger to catch up")
    finally:
        rc, err = stop(daemon, log)
    assert rc == 0, err[-3000:]
    out = venom("ledger", "export", "--state-dir", str(state))
    assert out.stdout, (
        out.stderr,
        "\n".join(ln for ln in err.splitlines() if "ledger" in ln)[-3000:],
    )
    beats = [json.loads(line)["record"]["beat"] for line in out.stdout.splitlines()]
    assert beats == list(range(1, len(beats) + 1))  # nothing lost, nothing twice
    assert len(beats) >= last
    times = [json.loads(line)["record"]["pulse"]["issued_at"] for line in out.stdout.splitlines()]
    held = max(b - a for a, b in itertools.pairwise(times))
    print(f"longest hold between two beats: {held:.2f} s")
    assert venom("ledger", "verify", "--state-dir", str(state)).returncode == 0
