"""An HA set-up of real processes for tests and benches (SPEC 2.6).

A nats-server with JetStream (the caller's), one `venom plugin run` hosting
the default plugins and the ledger, and `venom run` arbiters with
``[ha] enabled`` that host no plugins; helpers to find the leader and read
the ledger back.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats

from tests.helpers import spawn, venom, wait_for
from tests.processes import kill_tree
from venom.daemon.bus.embedded import NatsServerProcess
from venom.daemon.config.settings import DEFAULT_PLUGINS
from venom.schemas import BeatRecord

#: The default set without the torch model: what HA is about does not need it,
#: and a worker without torch starts in a fraction of the time.
LIGHT_PLUGINS = [name for name in DEFAULT_PLUGINS if name != "entropy-model"]

#: Generous for a slow, busy machine: a leader silent this long is replaced.
TAKEOVER_AFTER = 0.25


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def nats_cluster(tmp: Path) -> Iterator[list[NatsServerProcess]]:
    """Three nats-servers with JetStream on loopback, routed into one cluster, with
    the beat stream at 3 replicas (made here, as ops/nats/cluster.conf says); all
    stopped on the way out."""
    routes = [_free_port() for _ in range(3)]
    route_urls = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
    nodes = [
        NatsServerProcess(
            tmp / f"nats-{i}",
            start_timeout=30.0,
            extra_args=[
                "--server_name", f"n{i}",
                "--cluster_name", "venom",
                "--cluster", f"nats://127.0.0.1:{routes[i]}",
                "--routes", route_urls,
            ],
        )
        for i in range(3)
    ]  # fmt: skip
    try:
        for node in nodes:
            node.start()
        # This also waits until the cluster's JetStream has formed.
        wait_for(lambda: _make_stream(nodes[0].url), what="the R3 beat stream")
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def _make_stream(url: str) -> bool:
    async def make() -> bool:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream(timeout=2.0)
            await js.add_stream(
                name="VENOM_BEATS", subjects=["venom.beat"], num_replicas=3, duplicate_window=120.0
            )
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return anyio.run(make)


class Cluster:
    """The processes of one HA set-up, all stopped (and reaped) on the way out."""

    def __init__(
        self,
        tmp: Path,
        url: str,
        *,
        period: str = "period = 0.01",
        ha: str = "",
        replicas: int = 1,
    ) -> None:
        self.tmp, self.url, self.replicas = tmp, url, replicas
        self.config = tmp / "venom.toml"
        ha = ha or f"enabled = true\ntakeover_after = {TAKEOVER_AFTER}"
        self.config.write_text(
            f'[nats]\nurl = "{url}"\nstream_replicas = {replicas}\n[beat]\n{period}\n'
            f"[ha]\n{ha}\n[plugins]\nrun = []\n"
        )
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: dict[int, Path] = {}
        self.plugins_state = tmp / "plugins"

    def plugins(self) -> subprocess.Popen[str]:
        config = self.tmp / "plugins.toml"
        config.write_text(
            f'[nats]\nurl = "{self.url}"\nstream_replicas = {self.replicas}\n'
            f"[plugins.settings.ledger]\nreplicas = {self.replicas}\n"
        )
        log = self.tmp / "plugins.log"
        proc = spawn(
            "plugin",
            "run",
            *LIGHT_PLUGINS,
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


def leader_at(c: Cluster, beat: int) -> dict[str, Any]:
    """The leader's status once it is past ``beat``."""
    seen: dict[str, Any] = {}

    def past() -> bool:
        seen.update(c.status())
        return seen.get("role") == "leader" and int(seen.get("beat", 0)) > beat

    wait_for(past, what=f"a leader past beat {beat}")
    return dict(seen)


def settled(c: Cluster, arbiters: list[subprocess.Popen[str]]) -> tuple[subprocess.Popen[str], str]:
    """Wait until one of ``arbiters`` leads and every other follows it; (leader, its epoch).

    Which one leads is read, not assumed: on a busy machine a standby may
    take over from a leader that was only slow (safe, and counted).
    """
    for proc in arbiters:
        wait_for(lambda p=proc: bool(standby_epoch(c, p)), what="an arbiter's epoch")
    epochs = {standby_epoch(c, p): p for p in arbiters}
    found: list[str] = []

    def one_leader() -> bool:
        found.clear()
        statuses = {e: c.status(e) for e in epochs}
        leaders = [e for e, s in statuses.items() if s.get("role") == "leader"]
        if len(leaders) != 1:
            return False
        found.append(leaders[0])
        return all(s.get("leader") == leaders[0] for s in statuses.values())

    wait_for(one_leader, what="one leader, followed by the others")
    return epochs[found[0]], found[0]


def standby_epoch(c: Cluster, proc: subprocess.Popen[str]) -> str:
    text = c.logs[proc.pid].read_text()
    marker = "standing by as epoch "
    at = text.rfind(marker)
    return text[at + len(marker) :].split(" ", 1)[0] if at >= 0 else ""


def new_leader(c: Cluster, old: str, beat: int) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def taken() -> bool:
        seen.clear()
        seen.update(c.status())
        return seen.get("epoch", old) != old and int(seen.get("beat", 0)) > beat

    wait_for(taken, what=f"a new leader after epoch {old}")
    return dict(seen)


def ledger_records(state: Path) -> list[BeatRecord]:
    out = venom("ledger", "export", "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    decode = msgspec.json.Decoder(BeatRecord).decode
    return [decode(json.dumps(json.loads(line)["record"])) for line in out.stdout.splitlines()]


def plugin_stats(url: str) -> dict[str, dict[str, Any]]:
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


def kill_leader(c: Cluster, live: list[subprocess.Popen[str]], replacement: int) -> dict[str, Any]:
    """SIGKILL whichever of ``live`` leads, start standby number ``replacement``;
    the new leader's status once it beats past the old one."""
    leader, epoch = settled(c, live)
    beat = int(c.status(epoch).get("beat", 0))
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    live.remove(leader)
    lead = new_leader(c, epoch, beat)
    live.append(c.arbiter(replacement))
    return lead


def leader_entry(url: str) -> dict[str, Any]:
    """The ``leader`` entry of the ``VENOM_HA`` bucket ({} when there is none)."""

    async def read() -> dict[str, Any]:
        nc = await nats.connect(url)
        try:
            msg = await nc.jetstream().get_msg("KV_VENOM_HA", subject="$KV.VENOM_HA.leader")
            return dict(json.loads(msg.data or b"{}"))
        except Exception:
            return {}
        finally:
            await nc.close()

    return anyio.run(read)
