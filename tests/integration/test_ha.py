"""Arbiters that stand by (SPEC 2.6): kill the leader, a standby goes on; no beat twice.

Real processes on loopback: a nats-server with JetStream, one `venom plugin
run` hosting the default plugins and the ledger, and `venom run` arbiters
with ``[ha] enabled`` that host no plugins. The ledger is read back with
`venom ledger export` at the end.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hacluster import (
    Cluster,
    kill_leader,
    leader_at,
    leader_entry,
    ledger_records,
    new_leader,
    plugin_stats,
    settled,
    standby_epoch,
)
from tests.helpers import spawn, stop, venom, wait_for
from venom.daemon.bus.embedded import NatsServerProcess
from venom.plugins.ledger.store import LedgerStore

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    server = NatsServerProcess(tmp_path / "nats", jetstream=True)
    url = server.start()
    c = Cluster(tmp_path, url)
    try:
        yield c
    finally:
        c.close()
        server.stop()


def test_kill_the_leader_and_a_standby_goes_on_with_the_next_beat(cluster: Cluster) -> None:
    c = cluster
    c.plugins()
    live = [c.arbiter(0)]
    lead = leader_at(c, 30)
    live.append(c.arbiter(1))
    kills = 2
    for n in range(kills):
        leader, epoch = settled(c, live)
        # `venom status --arbiter` asks one arbiter: a standby says whom it follows.
        (other,) = (p for p in live if p is not leader)
        follower = c.status(standby_epoch(c, other))
        assert (follower["role"], follower["leader"]) == ("standby", epoch)
        lead = kill_leader(c, live, 2 + n)
    _, epoch = settled(c, live)
    leader_at(c, int(lead["beat"]) + 30)
    # The leader entry of the VENOM_HA bucket names it (it decides nothing).
    wait_for(lambda: leader_entry(c.url).get("epoch") == epoch, what="the VENOM_HA entry")
    for proc in (*live, c.procs[0]):
        rc, err = stop(proc, c.logs[proc.pid])
        assert rc == 0, err[-3000:]
    records = ledger_records(c.plugins_state)
    beats = [r.beat for r in records]
    assert beats == list(range(1, len(beats) + 1))  # each beat once, none skipped
    epochs = [r.epoch for r in records]
    changes = [i for i in range(1, len(records)) if epochs[i] != epochs[i - 1]]
    assert len(changes) >= kills, changes
    gaps = [records[i].pulse.issued_at - records[i - 1].pulse.issued_at for i in changes]
    print("takeover gaps, ms:", [round(g * 1e3, 1) for g in gaps])
    assert all(g < 30 for g in gaps)  # a generous bound: the figures go in the note
    out = venom("ledger", "verify", "--state-dir", str(c.plugins_state))
    assert out.returncode == 0, out.stderr


def test_a_paused_leader_yields_and_two_ledgers_on_the_stream_agree(cluster: Cluster) -> None:
    """SIGSTOP 2 s of the leader: replaced, it stands down when it wakes; no beat twice.

    A second ledger (its own state and durable consumer) reads the same
    stream all along: at every size the two roots are equal.
    """
    c = cluster
    c.plugins()
    second = _second_ledger(c)
    first = c.arbiter(0)
    lead = leader_at(c, 30)
    standby = c.arbiter(1)
    settled(c, [first, standby])
    first.send_signal(signal.SIGSTOP)
    try:
        taken = new_leader(c, lead["epoch"], int(lead["beat"]))
        time.sleep(2.0)
    finally:
        first.send_signal(signal.SIGCONT)
    old_log = c.logs[first.pid]
    wait_for(lambda: "standing by (epoch" in old_log.read_text(), what="the old leader to yield")
    assert c.status(lead["epoch"]).get("role") == "standby"
    leader_at(c, int(taken["beat"]) + 30)
    plugins = plugin_stats(c.url)
    assert plugins, "no plugin answered $SRV.STATS"
    for name, data in plugins.items():
        assert data.get("backwards", 0) == 0, (name, data)
    for proc in (standby, first, *c.procs[:2]):
        rc, err = stop(proc, c.logs[proc.pid])
        assert rc == 0, err[-3000:]
    records = ledger_records(c.plugins_state)
    beats = [r.beat for r in records]
    assert beats == list(range(1, len(beats) + 1))
    text = old_log.read_text()
    assert "after a stall, epoch" in text or "wrote beat" in text, text[-3000:]
    a = LedgerStore(c.plugins_state / "plugins" / "ledger", readonly=True)
    b = LedgerStore(second / "plugins" / "ledger", readonly=True)
    assert a.size == b.size == len(records)
    for size in range(1, a.size + 1):
        assert a.tree.root(size) == b.tree.root(size), size


def _second_ledger(c: Cluster) -> Path:
    """A second ledger process on the stream, with a durable consumer of its own."""
    second = c.tmp / "second"
    config = c.tmp / "second.toml"
    config.write_text(
        f'[nats]\nurl = "{c.url}"\n[plugins.settings.ledger]\ndurable = "second-ledger"\n'
    )
    log = c.tmp / "second.log"
    other = spawn(
        "plugin", "run", "ledger", "--config", str(config), "--state-dir", str(second), log=log
    )
    c.procs.append(other)
    c.logs[other.pid] = log
    return second
