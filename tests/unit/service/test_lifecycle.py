"""The service parts without a server: sd_notify, readiness, health answers, reload."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest

from venom.daemon.config.load import load_config
from venom.daemon.config.reload import changes, is_live, reload_config
from venom.daemon.config.settings import VenomConfig
from venom.daemon.service.health import HealthServer
from venom.daemon.service.sdnotify import Notifier
from venom.daemon.service.state import ServiceState
from venom.schemas import ConfigError


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"venom-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1)
    yield sock, "@" + name
    sock.close()


def test_notify_over_an_abstract_socket(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    notifier = Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
    assert notifier.enabled
    assert notifier.watchdog_interval == 1.5
    assert notifier.ready("beat 1")
    assert sock.recv(100) == b"READY=1\nSTATUS=beat 1"
    assert notifier.watchdog()
    assert sock.recv(100) == b"WATCHDOG=1"
    assert notifier.reloading()
    fields = dict(line.split("=") for line in sock.recv(100).decode().splitlines())
    assert fields["RELOADING"] == "1"
    assert int(fields["MONOTONIC_USEC"]) > 0
    assert notifier.stopping()
    assert sock.recv(100) == b"STOPPING=1\nSTATUS=stopping"
    notifier.close()


def test_notify_over_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    notifier = Notifier({"NOTIFY_SOCKET": str(path)})
    try:
        assert notifier.status("holding: x\ny")
        assert sock.recv(100) == b"STATUS=holding: x y"
    finally:
        notifier.close()
        sock.close()


def test_without_systemd_everything_is_a_no_op(tmp_path: Path) -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready()
    # A watchdog meant for another process (WATCHDOG_PID) is not ours.
    other = Notifier({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval is None
    # A socket that is gone: False, logged once, never raised.
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert not gone.ready()
    assert not gone.watchdog()
    gone.close()


def test_service_state_sends_ready_once_and_watchdog_when_due(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    sock, address = abstract_socket
    sock.settimeout(0.01)
    state = ServiceState(
        Notifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "600000"}), role="arbiter"
    )
    ready = [False, "starting"]
    state.readiness = lambda: (bool(ready[0]), str(ready[1]))
    state.describe = lambda: "beat 7"

    def received() -> list[bytes]:
        out = []
        while True:
            try:
                out.append(sock.recv(200))
            except (TimeoutError, BlockingIOError):
                return out

    state.turn()
    assert received() == [b"WATCHDOG=1", b"STATUS=not ready: starting | beat 7"]
    ready[:] = [True, ""]
    state.turn()  # READY as soon as it is ready; the watchdog is not due yet
    assert received() == [b"READY=1\nSTATUS=beat 7"]
    time.sleep(0.31)
    state.turn()
    assert received() == [b"WATCHDOG=1"]
    assert state.alive()
    state.stop("bye")
    assert received() == [b"STOPPING=1\nSTATUS=bye"]
    assert state.snapshot()["ready"] is False
    state.notifier.close()


@pytest.mark.anyio
async def test_health_endpoint_answers() -> None:
    state = ServiceState(Notifier({}), role="arbiter", stall_after=0.2)
    reason = ["NATS connection lost"]
    state.readiness = lambda: (not reason[0], reason[0])
    state.details = lambda: {"beat": 12}
    async with HealthServer(state, "127.0.0.1", 0) as server:
        port = int(server.url.rsplit(":", 1)[1])

        async def get(path: str, method: str = "GET") -> tuple[int, dict[str, object]]:
            stream = await anyio.connect_tcp("127.0.0.1", port)
            async with stream:
                await stream.send(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                data = b""
                with anyio.fail_after(5):
                    while chunk := await stream.receive():
                        data += chunk
                        if b"\r\n\r\n" in data and data.endswith(b"\n"):
                            break
            head, _, body = data.partition(b"\r\n\r\n")
            return int(head.split()[1]), json.loads(body)

        assert await get("/livez") == (200, {"alive": True})
        assert await get("/readyz") == (503, {"ready": False, "reason": "NATS connection lost"})
        reason[0] = ""
        assert await get("/readyz") == (200, {"ready": True, "reason": ""})
        code, status = await get("/status")
        assert code == 200
        assert status["beat"] == 12
        assert status["role"] == "arbiter"
        assert (await get("/nope"))[0] == 404
        assert (await get("/livez", "POST"))[0] == 405
        state.turn()
        await anyio.sleep(0.25)  # the loop stopped turning
        assert await get("/livez") == (503, {"alive": False})


@pytest.mark.anyio
async def test_health_port_in_use_is_a_config_error() -> None:
    state = ServiceState(Notifier({}), role="arbiter")
    async with HealthServer(state, "127.0.0.1", 0) as first:
        port = int(first.url.rsplit(":", 1)[1])
        with pytest.raises(ConfigError, match=r"health endpoint on 127\.0\.0\.1"):
            async with HealthServer(state, "127.0.0.1", port):
                pass


def test_reload_applies_live_keys_and_names_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "venom.toml"
    path.write_text("[thresholds]\nthreat_alert = 0.6\n")
    running = load_config(path, env={})
    path.write_text(
        "[thresholds]\nthreat_alert = 0.5\n[genome]\nfloor = 0.02\n"
        '[plugins]\nrequired_guards = ["thermal"]\n[beat]\nperiod = 0.01\n'
    )
    caplog.set_level("INFO", "venom.reload")
    new, applied = reload_config(running, lambda: load_config(path, env={}))
    assert applied == ["genome.floor", "plugins.required_guards", "thresholds.threat_alert"]
    assert new.thresholds.threat_alert == 0.5
    assert new.genome.floor == 0.02
    assert new.plugins.required_guards == ["thermal"]
    assert new.beat.period is None  # needs a restart: not applied
    assert "config: beat.period None -> 0.01 needs a restart (not applied)" in caplog.text
    assert "config reloaded: thresholds.threat_alert 0.6 -> 0.5" in caplog.text

    path.write_text("[thresholds]\nthreat_alert = 'high'\n")
    kept, applied = reload_config(new, lambda: load_config(path, env={}))
    assert kept is new
    assert applied == []
    assert "config not reloaded, keeping the running one" in caplog.text


def test_what_is_live() -> None:
    assert is_live("thresholds.stability")
    assert is_live("genome.floor")
    assert not is_live("genome.R")
    assert not is_live("nats.url")
    assert not is_live("plugins.run")
    a = VenomConfig()
    b = msgspec.structs.replace(
        a, plugins=msgspec.structs.replace(a.plugins, settings={"cusum": {"h": 4.0}})
    )
    assert changes(a, b) == {"plugins.settings": ({}, {"cusum": {"h": 4.0}})}


def test_client_options_name_the_key_that_is_wrong(tmp_path: Path) -> None:
    from venom.daemon.bus.natsbus import client_options
    from venom.daemon.config.settings import NatsConfig

    assert client_options(NatsConfig()) == {}
    opts = client_options(NatsConfig(user="arbiter", password="pw", token=""))
    assert opts == {"user": "arbiter", "password": "pw"}
    with pytest.raises(ConfigError, match=r"nats\.credentials: .*not a readable file"):
        client_options(NatsConfig(credentials=str(tmp_path / "none.creds")))
    with pytest.raises(ConfigError, match=r"nats\.tls_ca: .*not a readable file"):
        client_options(NatsConfig(tls_ca=str(tmp_path / "ca.pem")))
    bad_cert = tmp_path / "cert.pem"
    bad_cert.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"nats\.tls_cert: cannot load the client certificate"):
        client_options(NatsConfig(tls_cert=str(bad_cert)))
    # (A CA that is read and trusted: tests/integration/test_nats_permissions.py, TLS.)
