"""``venom run`` as systemd and a container runtime see it (issue 6, points 1 and 5).

The test plays systemd: it binds the notify socket, sets ``NOTIFY_SOCKET``
and ``WATCHDOG_USEC`` and starts ``venom run`` as a real process (its
embedded nats-server, plugins in a worker process, the ledger in its own),
reads the datagrams, asks the health endpoint, sends SIGHUP after changing
the config file, then SIGTERM, and checks the ledger.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.helpers import stop_process
from venom.daemon.bus.embedded import NatsServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLUGINS = '["optical-plant", "kalman", "thermal", "gate", "regen-core", "balance-core", "ledger"]'
CONFIG = """
[beat]
period = 0.01
[plugins]
run = {plugins}
[health]
enabled = true
port = {port}
[thresholds]
threat_alert = {alert}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSystemd:
    """The notify socket of a Type=notify unit: collects what the service says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str | None = None, timeout: float = 60.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            self.read()
            for _, fields in self.messages[seen:]:
                if key in fields and (value is None or fields[key] == value):
                    return fields
            seen = len(self.messages)
        raise AssertionError(f"no {key}={value or '*'} within {timeout} s: {self.messages[-5:]}")

    def with_key(self, key: str) -> list[tuple[float, dict[str, str]]]:
        return [(t, f) for t, f in self.messages if key in f]


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.sock.close()


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wait(cond: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _venom(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venom.daemon", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _whole_ledger(state: Path, beats: int) -> list[dict[str, Any]]:
    """The ledger's records, checked to be beats 1..``beats`` once each, in order, verified."""
    export = _venom("ledger", "export", "--state-dir", str(state))
    assert export.returncode == 0, export.stderr
    records = [json.loads(line)["record"] for line in export.stdout.splitlines()]
    assert [r["beat"] for r in records] == list(range(1, beats + 1))
    verify = _venom("ledger", "verify", "--state-dir", str(state))
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith(f"ok: {beats} entries")
    return records


def test_notify_watchdog_health_reload_and_stop(systemd: FakeSystemd, tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "venom.toml"
    config.write_text(CONFIG.format(plugins=PLUGINS, port=port, alert=0.6))
    state = tmp_path / "state"
    env = {**os.environ, "NOTIFY_SOCKET": str(systemd.path), "WATCHDOG_USEC": "1000000"}
    cmd = [sys.executable, "-m", "venom.daemon", "run", "--config", str(config)]
    log = tmp_path / "daemon.log"  # a file: an unread pipe would stall the daemon
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [*cmd, "--state-dir", str(state), "--seed", "3", "--no-live"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        # While it starts: alive (the watchdog is fed), not ready.
        _wait(lambda: _get_or_none(f"{base}/livez") == 200, "the health endpoint")
        ready = systemd.wait_for("READY", "1")
        assert "beat" in ready["STATUS"]
        # READY=1 comes once the first beat closed: the endpoint agrees.
        code, body = _get(f"{base}/readyz")
        assert (code, body) == (200, {"ready": True, "reason": ""})
        time.sleep(3.2)
        systemd.read()
        # The watchdog at half of WATCHDOG_USEC, from the beat loop; STATUS every 2 s.
        pings = [t for t, _ in systemd.with_key("WATCHDOG")]
        assert len(pings) >= 5
        gaps = [b - a for a, b in zip(pings[-5:], pings[-4:], strict=False)]
        assert all(gap < 0.9 for gap in gaps), gaps
        statuses = [f["STATUS"] for _, f in systemd.with_key("STATUS")]
        assert len(statuses) >= 2
        assert all(s.startswith("beat ") for s in statuses[-2:])
        code, status = _get(f"{base}/status")
        assert code == 200
        assert status["ready"]
        assert status["alive"]
        assert status["connected"]
        assert status["beat"] > 100
        assert 0 <= status["unstored_records"] < 100

        # SIGHUP: a threshold changed in the file counts from the next beat.
        config.write_text(CONFIG.format(plugins=PLUGINS, port=port, alert=0.0))
        proc.send_signal(signal.SIGHUP)
        systemd.wait_for("RELOADING", "1")
        after = systemd.wait_for("READY", "1")  # reload done
        assert "beat" in after["STATUS"]
        time.sleep(1.0)
    finally:
        code, _ = stop_process(proc, timeout=120)
    err = log.read_text()
    systemd.read()
    assert code == 0, err[-3000:]
    assert systemd.with_key("STOPPING"), "no STOPPING=1"
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    texts = [entry["msg"] for entry in logs]
    # One line per event, never one per beat.
    stopped = next(t for t in texts if t.startswith("stopped after"))
    beats = int(stopped.split()[2])
    assert len(logs) < 100 < beats

    # The reload: logged with the key, applied from a named beat on.
    assert "config reloaded: thresholds.threat_alert 0.6 -> 0.0" in texts
    from_beat = next(int(t.rsplit(" ", 1)[1]) for t in texts if "apply from beat" in t)
    # Every decided beat is in the ledger, once, in order; and it verifies.
    records = _whole_ledger(state, beats)
    # threat_alert = 0 makes every decision from that beat an alarm at least.
    actions = {r["beat"]: r["decision"]["action"] for r in records}
    assert all(actions[b] in ("ALERT", "QUARANTINE") for b in range(from_beat, beats + 1))
    assert any(actions[b] not in ("ALERT", "QUARANTINE") for b in range(1, from_beat))


def _get_or_none(url: str) -> int | None:
    try:
        return _get(url)[0]
    except (urllib.error.URLError, ConnectionError):
        return None


def test_nats_outage_holds_beats_and_loses_nothing(
    fresh_nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    port = _free_port()
    config = tmp_path / "venom.toml"
    config.write_text(CONFIG.format(plugins=PLUGINS, port=port, alert=0.6))
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"  # a file: an unread pipe would stall the daemon
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "venom.daemon", "run", "--config", str(config)),
                *("--nats", fresh_nats_server.url, "--state-dir", str(state), "--no-live"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            text=True,
        )
    base = f"http://127.0.0.1:{port}"

    def status() -> dict[str, Any]:
        code, body = _get(f"{base}/status")
        assert code == 200
        return body

    try:
        _wait(lambda: _get_or_none(f"{base}/readyz") == 200, "ready")
        _wait(lambda: status()["beat"] > 200, "200 beats")
        # The server goes away for 5 s (same port, same JetStream store).
        fresh_nats_server.port = fresh_nats_server.bound_port
        fresh_nats_server.stop()
        _wait(lambda: _get(f"{base}/readyz")[0] == 503, "not ready")
        assert _get(f"{base}/readyz")[1] == {"ready": False, "reason": "NATS connection lost"}
        held = status()["beat"]
        time.sleep(5)
        assert status()["beat"] <= held + 1  # no beat while cut off
        assert _get(f"{base}/livez")[0] == 200  # alive all along: waiting is not hanging
        fresh_nats_server.start()
        _wait(lambda: _get(f"{base}/readyz")[0] == 200, "ready again")
        _wait(lambda: status()["beat"] > held + 200, "200 more beats")
    finally:
        code, _ = stop_process(proc, timeout=120)
    err = log.read_text()
    assert code == 0, err[-3000:]
    texts = [json.loads(line)["msg"] for line in err.splitlines() if line.startswith("{")]
    assert any(t.startswith("holding beats after beat") for t in texts)
    assert any(t.startswith("resuming beats at beat") for t in texts)
    assert sum(t.startswith("nats error") for t in texts) < 10  # a burst is logged once
    beats = int(next(t for t in texts if t.startswith("stopped after")).split()[2])
    # Contiguous, each beat once, nothing lost across the outage.
    _whole_ledger(state, beats)


@pytest.mark.anyio
async def test_reconnect_backs_off_and_resets(fresh_nats_server: NatsServerProcess) -> None:
    from venom.daemon.bus.natsbus import RECONNECT_FIRST, RECONNECT_MAX, NatsBus

    bus = await NatsBus.connect(fresh_nats_server.url, name="t-backoff")
    try:
        states: list[bool] = []

        async def on_state(connected: bool) -> None:
            states.append(connected)

        bus.on_state(on_state)
        assert bus.nc.options["reconnect_time_wait"] == RECONNECT_FIRST
        fresh_nats_server.port = fresh_nats_server.bound_port
        fresh_nats_server.stop()
        # Attempts after 0.25, 0.5, 1, 2, 4 s ...: the wait has grown to the cap.
        with anyio.fail_after(20):
            while bus.nc.options["reconnect_time_wait"] < RECONNECT_MAX:
                await anyio.sleep(0.1)
        assert not bus.connected
        fresh_nats_server.start()
        with anyio.fail_after(20):
            while not bus.connected:
                await anyio.sleep(0.1)
        assert bus.nc.options["reconnect_time_wait"] == RECONNECT_FIRST
        assert states == [False, True]
    finally:
        await bus.close()
