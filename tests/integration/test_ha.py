"""Arbiters that stand by (SPEC 2.6): kill the leader, a standby goes on; no beat twice.

Real processes on loopback: a nats-server with JetStream, one `venom plugin
run` hosting the default plugins and the ledger, and `venom run` arbiters
with ``[ha] enabled`` that host no plugins. The ledger is read back with
`venom ledger export` at the end.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest

from tests.helpers import spawn, stop, venom, wait_for
from tests.processes import kill_tree
from venom.daemon.bus.embedded import NatsServerProcess
from venom.daemon.config.settings import DEFAULT_PLUGINS
from venom.plugins.ledger.store import LedgerStore
from venom.schemas import BeatRecord

pytestmark = pytest.mark.integration

#: Generous for a slow, busy machine: a leader silent this long is replaced.
TAKEOVER_AFTER = 0.25


class Cluster:
    """The processes of one HA set-up, all stopped (and reaped) on the way out."""

    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp, self.url = tmp, url
        self.config = tmp / "venom.toml"
        self.config.write_text(
            f'[nats]\nurl = "{url}"\n'
            "[beat]\nperiod = 0.01\n"
            f"[ha]\nenabled = true\ntakeover_after = {TAKEOVER_AFTER}\n"
            "[plugins]\nrun = []\n"
        )
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: dict[int, Path] = {}
        self.plugins_state = tmp / "plugins"

    def plugins(self) -> subprocess.Popen[str]:
        config = self.tmp / "plugins.toml"
        config.write_text(f'[nats]\nurl = "{self.url}"\n')
        log = self.tmp / "plugins.log"
        proc = spawn(
            "plugin",
            "run",
            *DEFAULT_PLUGINS,
            "--config",
            str(config),
            "--state-dir",
            str(self.plugins_state),
            log=log,
        )
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def arbiter(self, n: int) -> subprocess.Popen[str]:
        log = self.tmp / f"arbiter{n}.log"
        state = self.tmp / f"arbiter{n}"
        proc = spawn(
            "run", "--no-live", "--config", str(self.config), "--state-dir", str(state), log=log
        )
        self.procs.append(proc)
        self.logs[proc.pid] = log
        return proc

    def status(self, arbiter: str = "") -> dict[str, Any]:
        args = ["status", "--nats", self.url, "--timeout", "2"]
        out = venom(*args, *(["--arbiter", arbiter] if arbiter else []), timeout=30)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                kill_tree(proc.pid)
            proc.wait()


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


def leader_at(c: Cluster, beat: int) -> dict[str, Any]:
    """The leader's status once it is past ``beat``."""
    seen: dict[str, Any] = {}

    def past() -> bool:
        seen.update(c.status())
        return seen.get("role") == "leader" and int(seen.get("beat", 0)) > beat

    wait_for(past, what=f"a leader past beat {beat}")
    return dict(seen)


def test_kill_the_leader_and_a_standby_goes_on_with_the_next_beat(cluster: Cluster) -> None:
    c = cluster
    c.plugins()
    first = c.arbiter(0)
    lead = leader_at(c, 30)
    standby = c.arbiter(1)
    wait_for(lambda: "standing by" in c.logs[standby.pid].read_text(), what="the standby")
    kills = 2
    current, nxt = first, standby
    for n in range(kills):
        epoch = lead["epoch"]
        follower = _standby_epoch(c, nxt)
        # `venom status --arbiter` asks one arbiter: a standby says whom it follows.
        wait_for(lambda f=follower: bool(c.status(f)), what="the standby to answer")
        assert c.status(follower)["role"] == "standby"
        wait_for(lambda f=follower, e=epoch: c.status(f).get("leader") == e, what="its leader")
        current.send_signal(signal.SIGKILL)
        current.wait()
        lead = _new_leader(c, epoch, int(lead["beat"]))
        current, nxt = nxt, c.arbiter(2 + n)
        log = c.logs[nxt.pid]
        wait_for(lambda log=log: "standing by" in log.read_text(), what="a new standby")
    leader_at(c, int(lead["beat"]) + 30)
    for proc in (nxt, current):
        rc, err = stop(proc, c.logs[proc.pid])
        assert rc == 0, err[-3000:]
    plugins = c.procs[0]
    rc, err = stop(plugins, c.logs[plugins.pid])
    assert rc == 0, err[-3000:]
    records = _ledger(c.plugins_state)
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


def _standby_epoch(c: Cluster, proc: subprocess.Popen[str]) -> str:
    text = c.logs[proc.pid].read_text()
    marker = "standing by as epoch "
    at = text.rfind(marker)
    return text[at + len(marker) :].split(" ", 1)[0] if at >= 0 else ""


def _new_leader(c: Cluster, old: str, beat: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def taken() -> bool:
        seen.clear()
        seen.update(c.status())
        return seen.get("epoch", old) != old and int(seen.get("beat", 0)) > beat

    wait_for(taken, what=f"a new leader after epoch {old}")
    return dict(seen)


def _ledger(state: Path) -> list[BeatRecord]:
    out = venom("ledger", "export", "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    decode = msgspec.json.Decoder(BeatRecord).decode
    return [decode(json.dumps(json.loads(line)["record"])) for line in out.stdout.splitlines()]


def test_a_paused_leader_is_replaced_and_stands_down_when_it_wakes(cluster: Cluster) -> None:
    c = cluster
    c.plugins()
    first = c.arbiter(0)
    lead = leader_at(c, 30)
    standby = c.arbiter(1)
    follower_log = c.logs[standby.pid]
    wait_for(lambda: "standing by" in follower_log.read_text(), what="the standby")
    first.send_signal(signal.SIGSTOP)
    try:
        taken = _new_leader(c, lead["epoch"], int(lead["beat"]))
        time.sleep(2.0)
    finally:
        first.send_signal(signal.SIGCONT)
    old_log = c.logs[first.pid]
    wait_for(
        lambda: "standing by (epoch" in old_log.read_text(), what="the old leader to stand down"
    )
    assert c.status(lead["epoch"]).get("role") == "standby"
    leader_at(c, int(taken["beat"]) + 30)
    plugins = _plugin_stats(c.url)
    assert plugins, "no plugin answered $SRV.STATS"
    for name, data in plugins.items():
        assert data.get("backwards", 0) == 0, (name, data)
    for proc in (standby, first, c.procs[0]):
        rc, err = stop(proc, c.logs[proc.pid])
        assert rc == 0, err[-3000:]
    records = _ledger(c.plugins_state)
    beats = [r.beat for r in records]
    assert beats == list(range(1, len(beats) + 1))
    text = old_log.read_text()
    assert "after a stall, epoch" in text or "wrote beat" in text, text[-3000:]


def _plugin_stats(url: str) -> dict[str, dict[str, Any]]:
    """Each plugin's ``$SRV.STATS`` data, by plugin name."""

    async def ask() -> dict[str, dict[str, Any]]:
        nc = await nats.connect(url)
        try:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish("$SRV.STATS", b"", reply=inbox)
            out: dict[str, dict[str, Any]] = {}
            with contextlib.suppress(nats.errors.TimeoutError):
                while True:
                    msg = await sub.next_msg(timeout=1.0)
                    body = json.loads(msg.data)
                    for endpoint in body.get("endpoints", []):
                        data = endpoint.get("data") or {}
                        if "backwards" in data:
                            out[body["name"]] = data
            return out
        finally:
            await nc.close()

    return anyio.run(ask)


def test_two_ledgers_on_one_stream_have_equal_roots_at_every_size(cluster: Cluster) -> None:
    c = cluster
    c.plugins()
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
    first = c.arbiter(0)
    leader_at(c, 300)
    for proc in (first, other, c.procs[0]):
        rc, err = stop(proc, c.logs[proc.pid])
        assert rc == 0, err[-3000:]
    a = LedgerStore(c.plugins_state / "plugins" / "ledger", readonly=True)
    b = LedgerStore(second / "plugins" / "ledger", readonly=True)
    assert a.size == b.size >= 300
    for size in range(1, a.size + 1):
        assert a.tree.root(size) == b.tree.root(size), size
