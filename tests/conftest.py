"""Shared fixtures: the anyio backend and a real nats-server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from venom.daemon.embedded import NatsServerProcess


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServerProcess]:
    """One real nats-server (JetStream on) for the whole session, on a free port."""
    server = NatsServerProcess(tmp_path_factory.mktemp("nats"), jetstream=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServerProcess) -> str:
    return nats_server.url


@pytest.fixture
def fresh_nats_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    """A server of the test's own (to stop, restart or configure)."""
    server = NatsServerProcess(tmp_path / "nats", jetstream=True)
    server.start()
    yield server
    server.stop()
