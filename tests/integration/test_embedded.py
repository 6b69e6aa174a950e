"""The embedded nats-server: starts with JetStream, stops cleanly, fails clearly."""

from __future__ import annotations

import os
from pathlib import Path

import nats
import pytest

from venom.daemon.embedded import EmbeddedServer, NatsServerProcess
from venom.schemas import ServerError

pytestmark = pytest.mark.integration


@pytest.mark.anyio
async def test_starts_with_jetstream_on_the_state_dir_and_stops(tmp_path: Path) -> None:
    async with EmbeddedServer(tmp_path) as server:
        assert server.url.startswith("nats://127.0.0.1:")
        pid = server.pid
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        ack = await js.publish("t.x", b"hello")
        assert ack.seq == 1
        await nc.close()
    assert (tmp_path / "jetstream").is_dir()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_bad_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="not found or not executable at /no/such/server"):
        NatsServerProcess(tmp_path, server_path="/no/such/server").start()


def test_server_that_cannot_start_reports_why(tmp_path: Path) -> None:
    blocker = NatsServerProcess(tmp_path / "a", jetstream=False)
    blocker.start()
    try:
        port = int(blocker.url.rsplit(":", 1)[1])
        with pytest.raises(ServerError, match=r"exited|ready"):
            NatsServerProcess(tmp_path / "b", port=port, jetstream=False, start_timeout=5).start()
    finally:
        blocker.stop()
