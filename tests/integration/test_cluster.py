"""A 3-node NATS cluster loses a node while the daemon beats (issue 14, point 4).

Three nats-servers with JetStream on loopback, routed into one cluster; the
beat stream at 3 replicas. `venom run` connects to all three. The node that
leads the stream is killed with SIGKILL mid-run and started again: beats
are held while JetStream elects a new stream leader, then resume by
themselves, and the ledger holds every beat once.
"""

from __future__ import annotations

import itertools
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import nats
import pytest

from tests.hacluster import LIGHT_PLUGINS
from tests.helpers import spawn, stop, venom, wait_beat, wait_for
from venom.daemon.bus.embedded import NatsServerProcess

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[NatsServerProcess]]:
    routes = [_free_port() for _ in range(3)]
    route_urls = ",".join(f"nats://127.0.0.1:{p}" for p in routes)
    nodes = [
        NatsServerProcess(
            tmp_path / f"nats-{i}",
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
        # As ops/nats/cluster.conf says: the stream at 3 replicas before venom starts
        # (this also waits until the cluster's JetStream has formed).
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
