"""The NATS accounts of ``ops/nats`` (and of ``ops/k8s/nats-values.yaml``) on a real server.

nats-server is started with ``ops/nats/single.conf`` and its
``accounts.conf`` (copied to a temporary directory with only the JetStream
``store_dir`` line changed), the passwords in its environment as the file
asks. Then:

(a) the plugin user answers a pulse request in a queue group (twice from one
    connection, as a process hosting several plugins does), but publishing
    ``venom.decision`` and subscribing to ``venom.beat`` are permission
    violations (nats-py reports them through the error callback; the server
    logs them) and no beat record reaches it;
(b) the inspector reads ``venom.decision`` and may ask ``venom.ctl.status``,
    but publishing ``venom.pulse`` or ``venom.ctl.pause`` is a violation;
(c) ``venom run`` as the arbiter user, ``venom plugin run ...`` as the plugin
    user and ``venom plugin run ledger`` as the ledger user beat together,
    ``venom status``/``venom plugins`` work with the inspector's credentials,
    the ledger holds and verifies every beat, and no process (nor the server)
    logged a permission violation;
(d) the same for ``cluster.conf``: three nodes, the beat stream at 3 replicas;
(e) ``tls.conf``: venom connects with a ``tls://`` URL and the CA in
    ``nats.tls_ca``; a client without that CA is refused.

(a) and (b) run against both ``ops/nats/accounts.conf`` and the accounts of
the NATS chart's values in ``ops/k8s/nats-values.yaml``, rendered the way the
chart renders them, so the two stay the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
import yaml
from nats.aio.client import Client
from nats.aio.msg import Msg

from venom.daemon.bus.embedded import NatsServerProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NATS_DIR = REPO / "ops" / "nats"
HELM_VALUES = REPO / "ops" / "k8s" / "nats-values.yaml"
VENOM = [sys.executable, "-m", "venom.daemon"]
USERS = ("arbiter", "plugin", "ledger", "inspector", "admin")
#: What the plugin process of test (c) hosts: a sensor, an estimator, a guard, two cores.
PLUGINS = ["optical-plant", "kalman", "thermal", "regen-core", "balance-core"]


# --- servers ---------------------------------------------------------------


def _passwords() -> dict[str, str]:
    """A fresh password per user; they start with a letter (see accounts.conf)."""
    return {user: "v" + secrets.token_hex(16) for user in USERS}


def _env_var(user: str) -> str:
    return f"NATS_PASSWORD_{user.upper()}"


def _helm_accounts() -> str:
    """The accounts of nats-values.yaml as the chart writes them into nats.conf.

    The chart renders its ``config.merge`` values as JSON (which nats-server
    reads) and writes ``<< $VAR >>`` unquoted, as a variable reference.
    """
    values = yaml.safe_load(HELM_VALUES.read_text())
    accounts = values["config"]["merge"]["accounts"]
    text = "accounts: " + json.dumps(accounts, indent=2) + "\n"
    return re.sub(r'"<< (\$\w+) >>"', r"\1", text)


def _copy_conf(name: str, dest: Path, store: Path, *, accounts: str | None = None) -> Path:
    """``ops/nats/<name>`` and what it includes, in ``dest``, storing JetStream in ``store``.

    Only the ``store_dir`` line changes (nats-server refuses ``-sd`` beside
    it); ``accounts`` replaces accounts.conf (the chart's rendering).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for conf in NATS_DIR.glob("*.conf"):
        shutil.copy(conf, dest / conf.name)
    if accounts is not None:
        (dest / "accounts.conf").write_text(accounts)
    for conf in ("single.conf", "cluster.conf"):
        text = (dest / conf).read_text()
        text, count = re.subn(r'store_dir: "[^"]*"', f'store_dir: "{store}"', text)
        assert count == 1, f"{conf}: expected one store_dir line"
        (dest / conf).write_text(text)
    return dest / name


def _monitor_url(server: NatsServerProcess) -> str:
    found = re.findall(r"Starting http monitor on (\S+)", server.log_path.read_text())
    assert found, server.log_tail()
    return "http://" + found[-1]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Secured:
    """A running nats-server with venom's accounts and the passwords it was given."""

    def __init__(self, server: NatsServerProcess, passwords: dict[str, str]) -> None:
        self.server = server
        self.passwords = passwords
        self.url = server.url

    def url_for(self, user: str) -> str:
        """The client URL with ``user``'s credentials in it."""
        return self.url.replace("://", f"://{user}:{self.passwords[user]}@", 1)

    def env_for(self, user: str) -> dict[str, str]:
        """The environment a venom process of ``user`` gets (VENOM_NATS_*)."""
        return {"VENOM_NATS_USER": user, "VENOM_NATS_PASSWORD": self.passwords[user]}

    def violations(self, *, expect: int = 0, timeout: float = 3.0) -> list[str]:
        """Violation lines of the server's log (waiting for ``expect`` of them to be written)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.server.log_path.read_text()
            lines = [line for line in text.splitlines() if "Violation" in line]
            if len(lines) >= expect or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


def _start(
    tmp: Path, monkeypatch: pytest.MonkeyPatch, name: str, *, accounts: str | None = None
) -> tuple[NatsServerProcess, dict[str, str]]:
    passwords = _passwords()
    for user, password in passwords.items():
        monkeypatch.setenv(_env_var(user), password)  # the server's environment
    conf = _copy_conf(name, tmp / "conf", tmp / "store", accounts=accounts)
    # -m -1: monitoring on a free port, not the file's 8222.
    server = NatsServerProcess(
        tmp / "server", jetstream=False, extra_args=["-c", str(conf), "-m", "-1"]
    )
    server.start()
    return server, passwords


@pytest.fixture(params=["ops/nats/accounts.conf", "ops/k8s/nats-values.yaml"])
def secured(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Secured]:
    """single.conf with the accounts of ops/nats or of the chart's values."""
    accounts = _helm_accounts() if request.param.endswith(".yaml") else None
    server, passwords = _start(tmp_path, monkeypatch, "single.conf", accounts=accounts)
    yield Secured(server, passwords)
    server.stop()


@pytest.fixture
def single(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Secured]:
    """single.conf with ops/nats/accounts.conf."""
    server, passwords = _start(tmp_path, monkeypatch, "single.conf")
    yield Secured(server, passwords)
    server.stop()


# --- clients ---------------------------------------------------------------


class Errors(list[Exception]):
    """What nats-py's error callback (:meth:`add`) received."""

    async def add(self, exc: Exception) -> None:
        self.append(exc)

    async def wait_for(self, text: str, timeout: float = 3.0) -> str:
        with anyio.fail_after(timeout):
            while True:
                for exc in self:
                    if text in str(exc):
                        return str(exc)
                await anyio.sleep(0.02)


@asynccontextmanager
async def client(srv: Secured, user: str, errors: Errors | None = None) -> AsyncIterator[Client]:
    nc = await nats.connect(
        srv.url,
        user=user,
        password=srv.passwords[user],
        name=f"test-{user}",
        error_cb=(errors if errors is not None else Errors()).add,
        allow_reconnect=False,
        connect_timeout=2,
    )
    try:
        yield nc
    finally:
        await nc.close()


def _responder(body: bytes) -> Callable[[Msg], Any]:
    async def answer(msg: Msg) -> None:
        await msg.respond(body)

    return answer


# --- (a) the plugin user ------------------------------------------------------


@pytest.mark.anyio
async def test_plugin_answers_the_pulse_but_may_not_decide_or_read_beats(
    secured: Secured,
) -> None:
    errors = Errors()
    async with client(secured, "plugin", errors) as plugin, client(secured, "arbiter") as arbiter:
        # Two plugins in one process: two queue groups on one connection, two replies.
        await plugin.subscribe("venom.pulse", queue="venom.a", cb=_responder(b"a"))
        await plugin.subscribe("venom.pulse", queue="venom.b", cb=_responder(b"b"))
        await plugin.flush()
        inbox = arbiter.new_inbox()
        replies = await arbiter.subscribe(inbox + ".*")
        await arbiter.flush()
        await arbiter.publish("venom.pulse", b"{}", reply=inbox + ".1")
        got: set[bytes] = set()
        with contextlib.suppress(nats.errors.TimeoutError):
            for _ in range(2):
                got.add((await replies.next_msg(timeout=5)).data)
        # (It once timed out in a full CI-like run: say what the server refused, if anything.)
        assert got == {b"a", b"b"}, (list(errors), secured.violations())
        # The mesh is the plugin's to talk on.
        await plugin.publish("venom.mesh.anomaly", b"{}")
        await plugin.flush()

        await plugin.publish("venom.decision", b"{}")
        await plugin.flush()
        text = await errors.wait_for("venom.decision")
        assert text == 'nats: permissions violation for publish to "venom.decision"'

        beats = await plugin.subscribe("venom.beat")
        await plugin.flush()
        text = await errors.wait_for("venom.beat")
        assert text == 'nats: permissions violation for subscription to "venom.beat"'
        await arbiter.publish("venom.beat", b"{}")
        await arbiter.flush()
        with pytest.raises(nats.errors.TimeoutError):
            await beats.next_msg(timeout=0.5)

        assert plugin.is_connected  # a violation is refused, not fatal
        assert len(errors) == 2, errors  # nothing else was refused (the mesh publish)
    logged = secured.violations(expect=2)
    assert any('Publish Violation - Subject "venom.decision"' in line for line in logged)
    assert any('Subscription Violation - Subject "venom.beat"' in line for line in logged)
    assert all('"VENOM/user:plugin"' in line for line in logged), logged


# --- (b) the inspector --------------------------------------------------------


@pytest.mark.anyio
async def test_inspector_reads_but_does_not_command(secured: Secured) -> None:
    errors = Errors()
    async with (
        client(secured, "inspector", errors) as inspector,
        client(secured, "arbiter") as arbiter,
    ):
        decisions = await inspector.subscribe("venom.decision")
        everything = await inspector.subscribe("venom.>")
        await arbiter.subscribe("venom.ctl.*", cb=_responder(b'{"beat":1}'))
        await inspector.flush()
        await arbiter.flush()
        await arbiter.publish("venom.decision", b'{"action":"STEADY"}')
        assert (await decisions.next_msg(timeout=2)).data == b'{"action":"STEADY"}'
        assert (await everything.next_msg(timeout=2)).subject == "venom.decision"
        status = await inspector.request("venom.ctl.status", b"", timeout=2)
        assert status.data == b'{"beat":1}'

        for subject in ("venom.pulse", "venom.ctl.pause", "venom.ctl.weights", "venom.beat"):
            await inspector.publish(subject, b"{}")
            await inspector.flush()
            text = await errors.wait_for(f'"{subject}"')
            assert text == f'nats: permissions violation for publish to "{subject}"'
        assert len(errors) == 4, errors
        # The refused requests never reached the subscribers.
        while True:
            try:
                msg = await everything.next_msg(timeout=0.3)
            except nats.errors.TimeoutError:
                break
            assert msg.subject == "venom.ctl.status", msg.subject


# --- (c) venom's processes, each with its user -----------------------------------


def _spawn(
    stack: ExitStack, args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*VENOM, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, **env},
        )

    def cleanup() -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    stack.callback(cleanup)
    return proc


def _stop(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{log.name}: no exit {timeout} s after SIGTERM") from None
    assert code == 0, f"{log.name} exited {code}:\n{log.read_text()[-3000:]}"


def _venom(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VENOM, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _status(srv: Secured) -> dict[str, Any] | None:
    """``venom status`` as the inspector (credentials in the URL), or None."""
    res = _venom("status", "--nats", srv.url_for("inspector"))
    return json.loads(res.stdout) if res.returncode == 0 else None


def _assert_clean(logs: list[Path], srv: Secured) -> None:
    for log in logs:
        text = log.read_text()
        assert "violation" not in text.lower(), f"{log.name}:\n{text[-3000:]}"
        assert "Traceback" not in text, f"{log.name}:\n{text[-3000:]}"
    assert srv.violations() == []


def test_daemon_plugins_and_ledger_run_with_their_users(single: Secured, tmp_path: Path) -> None:
    config = tmp_path / "venom.toml"
    # Health endpoints on free ports, as the probes of ops/ use them.
    config.write_text(
        "[plugins]\nrun = []\n\n[run]\nlive = false\n\n[health]\nenabled = true\nport = 0\n"
        # 50 beats/s: the permissions are tested, not whether a loaded machine keeps T_Λ.
        "\n[beat]\nperiod = 0.02\n"
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("ledger", "plugins", "arbiter")}
    ledger_state = tmp_path / "ledger-state"
    url = single.url  # no credentials in it: they come from VENOM_NATS_USER/PASSWORD
    common = ["--nats", url, "--config", str(config)]
    with ExitStack() as stack:
        ledger = _spawn(
            stack,
            ["plugin", "run", "ledger", *common, "--state-dir", str(ledger_state)],
            single.env_for("ledger"),
            logs["ledger"],
        )
        plugins = _spawn(
            stack,
            ["plugin", "run", *PLUGINS, *common, "--state-dir", str(tmp_path / "plugin-state")],
            single.env_for("plugin"),
            logs["plugins"],
        )
        arbiter = _spawn(
            stack,
            ["run", *common, "--state-dir", str(tmp_path / "arbiter-state"), "--no-live"],
            single.env_for("arbiter"),
            logs["arbiter"],
        )

        def beating() -> dict[str, Any] | None:
            for proc, log in ((ledger, "ledger"), (plugins, "plugins"), (arbiter, "arbiter")):
                assert proc.poll() is None, logs[log].read_text()[-3000:]
            status = _status(single)
            if status is None or status["beat"] < 300:
                return None
            live = {p["name"] for p in status["plugins"] if not p["down"]}
            return status if live == {*PLUGINS, "ledger"} else None

        status = _wait(beating, 120, "300 beats with every plugin answering")
        assert status["k"] == 2  # regen-core and balance-core

        # Discovery ($SRV.INFO/STATS) is open to the inspector too.
        # A generous gathering time: a busy process may answer late, not never.
        res = _venom("plugins", "--json", "--timeout", "5", "--nats", single.url_for("inspector"))
        assert res.returncode == 0, res.stderr
        assert {row["name"] for row in json.loads(res.stdout)} >= {*PLUGINS, "ledger"}

        # Every process is ready on its health endpoint (the k8s readiness probe).
        for name, log in logs.items():
            found = re.search(r"health endpoint at (http://[^ ]+)", log.read_text())
            assert found, f"{name}: no health endpoint logged"
            with urllib.request.urlopen(found.group(1) + "/readyz", timeout=5) as response:
                assert response.status == 200, name

        # Each connection authenticated as the user it was given.
        conns = _get_json(_monitor_url(single.server) + "/connz?auth=true")["connections"]
        users = {c.get("name", ""): c.get("authorized_user") for c in conns}
        assert {"arbiter", "plugin", "ledger"} <= set(users.values()), users
        assert set(users.values()) <= {"arbiter", "plugin", "ledger", "inspector"}, users

        _stop(arbiter, logs["arbiter"])
        _stop(plugins, logs["plugins"])
        _stop(ledger, logs["ledger"])

    stopped = re.search(r"stopped after (\d+) beats", logs["arbiter"].read_text())
    assert stopped, logs["arbiter"].read_text()[-3000:]
    beats = int(stopped.group(1))
    res = _venom("ledger", "verify", "--state-dir", str(ledger_state))
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith(f"ok: {beats} entries"), res.stdout
    _assert_clean(list(logs.values()), single)


# --- (d) the cluster --------------------------------------------------------------


def _stream_info(url: str, password: str) -> Any:
    """VENOM_BEATS's info, asked as the admin user; None while there is none, or while
    the cluster does not answer yet (a stream leader being elected on a slow machine)."""

    async def ask() -> Any:
        nc = await nats.connect(
            url.split(","), user="admin", password=password, allow_reconnect=False
        )
        try:
            return await nc.jetstream().stream_info("VENOM_BEATS")
        except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
            return None
        finally:
            await nc.close()

    return anyio.run(ask)


def test_cluster_conf_keeps_the_beat_stream_at_three_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = _passwords()
    for user, password in passwords.items():
        monkeypatch.setenv(_env_var(user), password)
    monkeypatch.setenv("NATS_ROUTE_PASSWORD", "v" + secrets.token_hex(16))
    route_ports = [_free_port() for _ in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{p}" for p in route_ports)
    nodes: list[NatsServerProcess] = []
    try:
        for i, port in enumerate(route_ports, 1):
            conf = _copy_conf("cluster.conf", tmp_path / f"conf-{i}", tmp_path / f"store-{i}")
            monkeypatch.setenv("NATS_SERVER_NAME", f"nats-{i}")  # read when the node starts
            node = NatsServerProcess(
                tmp_path / f"node-{i}",
                jetstream=False,
                extra_args=["-c", str(conf), "-m", "-1"],
            )
            # The same file; only the ports differ, as three nodes share this host.
            node.extra_args += ["--cluster", f"nats://127.0.0.1:{port}", "--routes", routes]
            node.start()
            nodes.append(node)

        def healthy() -> bool:
            for node in nodes:
                try:
                    _get_json(_monitor_url(node) + "/healthz")
                except OSError:
                    return False
            return True

        _wait(healthy, 120, "the cluster's JetStream to elect a leader")
        srv = Secured(nodes[0], passwords)
        srv.url = ",".join(node.url for node in nodes)
        config = tmp_path / "venom.toml"
        config.write_text(
            "[plugins]\nrun = []\n\n[plugins.settings.ledger]\nreplicas = 3\n\n"
            "[run]\nlive = false\n"
        )
        common = ["--nats", srv.url, "--config", str(config)]
        logs = [tmp_path / "ledger.log", tmp_path / "arbiter.log"]
        with ExitStack() as stack:
            # The ledger first: it creates the stream with its 3 replicas.
            ledger = _spawn(
                stack,
                ["plugin", "run", "ledger", *common, "--state-dir", str(tmp_path / "ledger")],
                srv.env_for("ledger"),
                logs[0],
            )
            _wait(lambda: _stream_info(srv.url, passwords["admin"]), 120, "the beat stream")
            res = subprocess.run(
                [*VENOM, "run", *common, "--beats", "200", "--state-dir", str(tmp_path / "a")],
                env={**os.environ, **srv.env_for("arbiter")},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            logs[1].write_text(res.stderr)
            assert res.returncode == 0, res.stderr[-3000:]

            info = _wait(lambda: _stream_info(srv.url, passwords["admin"]), 60, "stream info")
            assert info.config.num_replicas == 3
            assert info.cluster is not None
            assert info.cluster.leader
            assert len(info.cluster.replicas or []) == 2
            assert info.state.messages == 200
            _stop(ledger, logs[0])
        res = _venom("ledger", "verify", "--state-dir", str(tmp_path / "ledger"))
        assert res.stdout.startswith("ok: 200 entries"), res.stdout + res.stderr
        _assert_clean(logs, srv)
        for node in nodes:
            assert "Violation" not in node.log_path.read_text()
    finally:
        for node in nodes:
            node.stop()


# --- (e) TLS ----------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_certs(where: Path) -> None:
    """A CA and a server certificate for localhost / 127.0.0.1, as tls.conf expects."""
    where.mkdir(parents=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subject = ["-days", "2", "-subj"]
    _openssl(
        "req",
        "-x509",
        *ec,
        *subject,
        "/CN=venom-test-ca",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        cwd=where,
    )
    _openssl(
        "req",
        *ec,
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
        cwd=where,
    )
    (where / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
        cwd=where,
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_conf_serves_tls_clients_that_trust_its_ca(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = tmp_path / "certs"
    _make_certs(certs)
    passwords = _passwords()
    for user, password in passwords.items():
        monkeypatch.setenv(_env_var(user), password)
    conf = _copy_conf("tls.conf", tmp_path / "conf", tmp_path / "store")
    text = conf.read_text().replace("/etc/nats/tls/", f"{certs}/")
    conf.write_text(text)
    server = NatsServerProcess(
        tmp_path / "server", jetstream=False, extra_args=["-c", str(conf), "-m", "-1"]
    )
    # The server starts when it listens; the readiness probe speaks plain TCP only.
    server.start()
    try:
        url = "tls://localhost:" + server.url.rsplit(":", 1)[1]
        config = tmp_path / "venom.toml"
        config.write_text(
            f'[nats]\ntls_ca = "{certs / "ca.pem"}"\n[plugins]\nrun = []\n\n[run]\nlive = false\n'
        )
        env = {**os.environ, **Secured(server, passwords).env_for("arbiter")}
        state = ["--state-dir", str(tmp_path / "state")]
        res = subprocess.run(
            [*VENOM, "run", "--nats", url, "--config", str(config), "--beats", "20", *state],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert "stopped after 20 beats" in res.stderr
        # The arbiter alone: it created the beat stream itself, as its user may.
        assert "violation" not in res.stderr.lower()
        assert "Violation" not in server.log_path.read_text()

        async def untrusting() -> None:
            # The system's CAs only: the test CA is not among them.
            await nats.connect(
                url,
                user="arbiter",
                password=passwords["arbiter"],
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )

        with pytest.raises(Exception, match=r"(?i)certificate verify failed"):
            anyio.run(untrusting)
        assert "TLS required for client connections" in server.log_path.read_text()
    finally:
        server.stop()
