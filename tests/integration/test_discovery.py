"""NATS micro discovery on a real server (issue 5, point 3; SPEC 5.3).

The daemon runs as ``venom run`` does (``run_daemon``, plugins in a real
worker process, the ledger in its own). While it beats, ``$SRV.PING``,
``$SRV.INFO`` and ``$SRV.STATS`` are asked the way ``nats micro`` asks
them — all services, by name, by name and id — and every answer is checked
against the published ADR-32 schemas.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from tests.adr32 import VERBS, check_adr32
from tests.helpers import Echo, make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.natsbus import NatsBus
from venom.daemon.config.settings import PluginsConfig
from venom.daemon.service.run import run_daemon
from venom.plugins.host import PluginHost
from venom.schemas import SCHEMA_VERSION, Subjects, host_set

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

PREFIX = "disco"
PLUGINS = ["optical-plant", "kalman", "thermal", "regen-core", "balance-core", "ledger"]
HOSTED = host_set(p for p in PLUGINS if p != "ledger")
ROLES = {
    "optical-plant": "sensor",
    "kalman": "estimator",
    "thermal": "guard",
    "regen-core": "core",
    "balance-core": "core",
    "ledger": "ledger",
}


async def _ask(bus: NatsBus, subject: str) -> list[dict[str, Any]]:
    replies = await bus.request_many(subject, b"", timeout=0.3)
    docs = [msgspec.json.decode(r.data) for r in replies]
    return [d for d in docs if d.get("metadata", {}).get("venom.prefix") == PREFIX]


async def test_services_answer_adr32_while_beating(nats_url: str, tmp_path: Path) -> None:
    cfg = make_config(
        prefix=PREFIX,
        period=0.01,
        plugins=PluginsConfig(run=PLUGINS, processes=1, alone=["ledger"]),
    )
    cfg = msgspec.structs.replace(cfg, nats=msgspec.structs.replace(cfg.nats, url=nats_url))
    seen: dict[str, list[dict[str, Any]]] = {}

    bus = await NatsBus.connect(nats_url, name="t-inspector")
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_daemon(cfg, tmp_path, beats=100_000, live=False))
            try:
                with anyio.fail_after(120):
                    # Until every plugin has answered a while (the beat starts before
                    # they are all up, and a loaded machine beats slowly).
                    while True:
                        arb = await _ask(bus, "$SRV.STATS.venom-arbiter")
                        data = arb[0]["endpoints"][0]["data"] if arb else {}
                        if data.get("plugins") == len(PLUGINS) and data.get("replies", 0) >= 1200:
                            break
                        await anyio.sleep(0.1)
                for verb in VERBS:
                    seen[verb] = await _ask(bus, f"$SRV.{verb}")
                by_name = {d["name"]: d for d in seen["INFO"]}
                for name, doc in by_name.items():
                    one = await _ask(bus, f"$SRV.PING.{name}")
                    assert [d["id"] for d in one] == [doc["id"]]
                    exact = await _ask(bus, f"$SRV.STATS.{name}.{doc['id']}")
                    assert len(exact) == 1
                    check_adr32("STATS", exact[0])
            finally:
                # Stop it as Ctrl-C would (run_daemon watches this process's signals).
                os.kill(os.getpid(), signal.SIGINT)
    finally:
        await bus.close()

    expected = {"venom-arbiter", *(f"venom-{p}" for p in PLUGINS)}
    for verb, docs in seen.items():
        assert sorted(d["name"] for d in docs) == sorted(expected), verb
        for doc in docs:
            check_adr32(verb, doc)
            assert doc["metadata"]["venom.schema"] == str(SCHEMA_VERSION)
            assert doc["version"]

    info = {d["name"]: d for d in seen["INFO"]}
    assert info["venom-arbiter"]["metadata"]["venom.role"] == "arbiter"
    for plugin, role in ROLES.items():
        meta = info[f"venom-{plugin}"]["metadata"]
        assert meta["venom.plugin"] == plugin
        assert meta["venom.role"] == role
        (endpoint,) = info[f"venom-{plugin}"]["endpoints"]
        assert endpoint["subject"] == f"{PREFIX}.pulse"
        # One worker hosts the pulse plugins (one ReplyBatch a beat); the ledger is alone.
        if plugin == "ledger":
            assert endpoint["queue_group"] == f"{PREFIX}.ledger"
        else:
            assert endpoint["queue_group"] == f"{PREFIX}.host.{HOSTED}"

    stats = {d["name"]: d for d in seen["STATS"]}
    arbiter = stats["venom-arbiter"]["endpoints"][0]["data"]
    assert arbiter["beat"] >= 200
    assert arbiter["plugins"] == len(PLUGINS)
    assert arbiter["k"] == 2
    assert arbiter["p"] == len(PLUGINS) + 1
    assert arbiter["replies"] >= 1200
    assert 0 < arbiter["p50_beat_ns"] <= arbiter["p99_beat_ns"]
    for plugin in PLUGINS:
        (endpoint,) = stats[f"venom-{plugin}"]["endpoints"]
        assert endpoint["num_requests"] >= 150, plugin
        assert endpoint["num_errors"] == 0
        assert endpoint["processing_time"] > 0
        assert 0 < endpoint["average_processing_time"] < 1_000_000_000
        data = endpoint["data"]
        assert 0 < data["p50_ns"] <= data["p99_ns"]
        assert data["last_ns"] > 0
        assert data["last_beat"] >= 150
        assert data["role"] == ROLES[plugin]
        assert data["late"] >= 0
        assert data["rejected"] == 0


async def test_a_plugin_first_heard_by_reply_is_asked_who_it_is_at_once(nats_url: str) -> None:
    """Role and version within one discovery round, not at the next interval (issue 11)."""
    # A minute between rounds: only the round its first reply triggers can name it.
    cfg = make_config(prefix="heard", period=0.02, discovery_interval=60.0)
    bus = await NatsBus.connect(nats_url, name="t-heard-arbiter")
    pbus = await NatsBus.connect(nats_url, name="t-heard-plugin")
    arbiter = Arbiter(bus, cfg)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(arbiter.run)  # start-up rounds over: nobody was there
            assert "echo" not in arbiter.discovery.plugins
            async with PluginHost([Echo()], pbus, subjects=Subjects("heard")):
                with anyio.fail_after(30):
                    while (entry := arbiter.discovery.plugins.get("echo")) is None or (
                        entry.role,
                        entry.version,
                    ) != ("estimator", "1.0.0"):
                        await anyio.sleep(0.02)
                status = arbiter.snapshot()
                assert [(p.name, p.role, p.version) for p in status.plugins] == [
                    ("echo", "estimator", "1.0.0")
                ]
            arbiter.stop()
    finally:
        await pbus.close()
        await bus.close()
