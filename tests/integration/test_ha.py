"""Arbiters that stand by (SPEC 2.6): a paused leader yields; no beat twice.

Killing the leader (five times in a row) is in test_cluster.py, on a 3-node
cluster. Real processes on loopback: a nats-server with JetStream, one
`venom plugin run` hosting the default plugins and the ledger, and `venom run` arbiters
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
    leader_at,
    ledger_records,
    new_leader,
    plugin_stats,
    settled,
)
from tests.helpers import spawn, stop, wait_for
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
