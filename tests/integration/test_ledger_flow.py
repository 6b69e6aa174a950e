"""Beats flow arbiter → JetStream → ledger on a real server; restarts, catch-up, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from tests.helpers import Echo, make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.base import BusMessage
from venom.daemon.bus.beatstream import BeatPublisher
from venom.daemon.bus.embedded import NatsServerProcess
from venom.daemon.bus.natsbus import NatsBus
from venom.plugins.host import PluginHost
from venom.plugins.ledger.entry import parse_entry
from venom.plugins.ledger.plugin import LedgerPlugin
from venom.plugins.ledger.store import LedgerStore
from venom.plugins.ledger.verify import verify_ledger
from venom.plugins.ledger.writer import LedgerConfig
from venom.plugins.sdk import PluginContext
from venom.schemas import BeatRecord, Codec, LedgerHead, PluginError, Pulse, Subjects

pytestmark = [pytest.mark.integration]


def ledger_plugin(bus: NatsBus, directory: Path, prefix: str) -> LedgerPlugin:
    return LedgerPlugin(
        context=PluginContext(state_dir=directory, subjects=Subjects(prefix), bus=bus)
    )


async def run_beats(
    url: str, prefix: str, beats: int, traces: dict[int, str], plugins: list[object]
) -> BeatPublisher:
    bus = await NatsBus.connect(url)
    pbus = await NatsBus.connect(url)
    subjects = Subjects(prefix)
    try:
        publisher = BeatPublisher(bus, subjects, Codec())
        tail = await publisher.start()

        async def sink(record: BeatRecord) -> None:
            traces[record.beat] = record.trace_id
            await publisher(record)

        async with PluginHost([Echo(), *plugins], pbus, subjects=subjects):  # type: ignore[list-item]
            arbiter = Arbiter(bus, make_config(prefix=prefix, period=0.0), record_sink=sink)
            arbiter.continue_after(tail.records)  # beat numbers go on across runs
            with anyio.fail_after(60):
                await arbiter.run(beats=beats)
            await publisher.flush()
    finally:
        await pbus.close()
        await bus.close()
    return publisher


@pytest.mark.anyio
async def test_every_beat_once_with_its_trace_id_and_catch_up(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path / "nats")
    url = server.start()
    try:
        directory = tmp_path / "ledger"
        traces: dict[int, str] = {}
        # The ledger is down for the first 1,000 beats ...
        pub = await run_beats(url, "flow", 1000, traces, [])
        assert pub.published == 1000
        # ... then starts, catches up, and stays in step for 200 more.
        pbus = await NatsBus.connect(url)
        pulls: list[bytes] = []

        async def on_pull(msg: Any) -> None:
            pulls.append(msg.data)

        await pbus.nc.subscribe("$JS.API.CONSUMER.MSG.NEXT.FLOW_BEATS.>", cb=on_pull)
        try:
            ledger = ledger_plugin(pbus, directory, "flow")
            async with PluginHost([ledger], pbus, subjects=Subjects("flow")):
                assert ledger.writer is not None
                with anyio.fail_after(30):
                    await ledger.writer.caught_up.wait()
                assert ledger.store is not None
                assert ledger.store.size == 1000
                heads: list[LedgerHead] = []

                async def on_head(msg: BusMessage) -> None:
                    heads.append(Codec().decode(LedgerHead, msg.data))

                await pbus.subscribe(Subjects("flow").ledger_head, on_head)
                more: dict[int, str] = {}
                await run_beats(url, "flow", 200, more, [])
                with anyio.fail_after(10):
                    while ledger.store.size < 1200 or not heads or heads[-1].size < 1200:
                        await anyio.sleep(0.01)
                assert heads[-1].root == ledger.store.tree.root().hex()
        finally:
            await pbus.close()
    finally:
        server.stop()
    # One long pull request outstanding, not one per fetch (each costs the
    # ledger and the server a request and a status reply): 1,200 records
    # in batches of 256, plus a request every 2 s while idle.
    assert len(pulls) <= 30, len(pulls)
    report = verify_ledger(directory)
    assert report.ok, report.problem
    assert report.entries == 1200
    store = LedgerStore(directory, readonly=True)
    beats = [parse_entry(store.read(i)).record for i in range(store.size)]
    assert [r.beat for r in beats] == list(range(1, 1201))
    assert [r.trace_id for r in beats[:1000]] == [traces[b] for b in range(1, 1001)]
    assert [r.trace_id for r in beats[1000:]] == [more[b] for b in range(1001, 1201)]


@pytest.mark.anyio
@pytest.mark.parametrize("fsync", ["group", "always"])
async def test_the_server_restarts_under_the_ledger(
    tmp_path: Path, fsync: Literal["group", "always"]
) -> None:
    server = NatsServerProcess(tmp_path / "nats")
    url = server.start()
    directory = tmp_path / "ledger"
    try:
        pbus = await NatsBus.connect(url)
        try:
            ledger = LedgerPlugin(
                config=LedgerConfig(fsync=fsync),
                context=PluginContext(state_dir=directory, subjects=Subjects("restart"), bus=pbus),
            )
            async with PluginHost([ledger], pbus, subjects=Subjects("restart")):
                assert ledger.store is not None
                await run_beats(url, "restart", 150, {}, [])
                with anyio.fail_after(20):
                    while ledger.store.size < 150:
                        await anyio.sleep(0.01)
                # The pull request out there dies with the server; a new one follows.
                server.restart()
                with anyio.fail_after(30):
                    while pbus.nc.stats["reconnects"] < 1 or not pbus.nc.is_connected:
                        await anyio.sleep(0.05)
                await run_beats(url, "restart", 150, {}, [])
                with anyio.fail_after(20):
                    while ledger.store.size < 300:
                        await anyio.sleep(0.01)
        finally:
            await pbus.close()
    finally:
        server.stop()
    report = verify_ledger(directory)
    assert report.ok, report.problem
    store = LedgerStore(directory, readonly=True)
    beats = [parse_entry(store.read(i)).record.beat for i in range(store.size)]
    assert beats == list(range(1, 301))


@pytest.mark.anyio
async def test_kill_9_the_ledger_process_while_beats_flow(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path / "nats")
    url = server.start()
    state = tmp_path / "state"
    cfg = tmp_path / "venom.toml"
    cfg.write_text('[nats]\nprefix = "crash"\n[plugins.settings.ledger]\ngroup_ms = 5.0\n')
    cmd = [
        sys.executable,
        "-m",
        "venom.daemon",
        "plugin",
        "run",
        "ledger",
        "--nats",
        url,
        "--config",
        str(cfg),
        "--state-dir",
        str(state),
    ]
    env = {**os.environ, "VENOM_LOG_LEVEL": "warning"}
    traces: dict[int, str] = {}
    try:
        log = open(tmp_path / "ledger.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(cmd, env=env, stderr=log)
        async with anyio.create_task_group() as tg:
            done = anyio.Event()

            async def beats() -> None:
                await run_beats(url, "crash", 3000, traces, [])
                done.set()

            tg.start_soon(beats)
            for _ in range(3):  # three kill -9 while beats flow
                await anyio.sleep(0.6)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                proc = subprocess.Popen(cmd, env=env, stderr=log)
            await done.wait()
        ledger_dir = state / "plugins" / "ledger"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (ledger_dir / "entries.log").exists() and LedgerStore(
                ledger_dir, readonly=True
            ).size >= 3000:
                break
            await anyio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "ledger.log").read_text()
    finally:
        server.stop()
        log.close()
    report = verify_ledger(state / "plugins" / "ledger")
    assert report.ok, report.problem
    store = LedgerStore(state / "plugins" / "ledger", readonly=True)
    records = [parse_entry(store.read(i)).record for i in range(store.size)]
    assert [r.beat for r in records] == list(range(1, 3001))  # none missing, none twice
    assert [r.trace_id for r in records] == [traces[b] for b in range(1, 3001)]


@pytest.mark.anyio
async def test_an_fsync_error_stops_the_ledger_loudly(
    nats_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pbus = await NatsBus.connect(nats_url)
    traces: dict[int, str] = {}
    try:
        ledger = ledger_plugin(pbus, tmp_path / "ledger", "fsyncfail")
        async with PluginHost([ledger], pbus, subjects=Subjects("fsyncfail")):

            def broken(fd: int) -> None:
                raise OSError(5, "Input/output error")

            monkeypatch.setattr(os, "fsync", broken)
            await run_beats(nats_url, "fsyncfail", 20, traces, [])
            with anyio.fail_after(10):
                while ledger._task is not None and not ledger._task.done():
                    await anyio.sleep(0.01)
            monkeypatch.undo()
            assert ledger.store is not None
            with pytest.raises(PluginError, match="ledger writer stopped: fsync"):
                await ledger.handle(ledger_pulse())
    finally:
        await pbus.close()
    assert any(
        "ledger writer stopped" in r.getMessage() and r.levelname == "CRITICAL"
        for r in caplog.records
    )


def ledger_pulse() -> Pulse:
    return Pulse(beat=1, issued_at=0.0, deadline=1.0, t_lambda=0.004, seed=1)
