"""No orphans from the product (issue 11, points 3 and 5), against the real binaries.

- ``kill -9`` of ``venom run``: its embedded nats-server (PR_SET_PDEATHSIG)
  and its plugin processes (``--watch-parent``) are gone within 5 s;
- a second ``venom run`` on a state directory in use is refused, one line
  naming the pid that holds it (``<state>/venom.lock``);
- a nats-server left on the store by a killed daemon is stopped before the
  new one starts: one server per JetStream store, never two.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import stop_process
from tests.processes import alive, cmdline, descendants, reaped
from venom.daemon.bus.embedded import PID_NAME, NatsServerProcess
from venom.daemon.bus.parentdeath import parent_death_hook
from venom.daemon.service.statelock import LOCK_NAME, StateLock
from venom.schemas import StateDirInUse

pytestmark = pytest.mark.integration

VENOM = [sys.executable, "-m", "venom.daemon"]
#: A light set in two worker processes (the pulse plugins, the ledger).
PLUGINS = ["optical-plant", "kalman", "thermal", "gate", "regen-core", "balance-core", "ledger"]
LIGHT = f"[plugins]\nprocesses = 1\nalone = ['ledger']\nrun = {json.dumps(PLUGINS)}\n"


def wait_for(cond: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def servers_on(store: Path) -> list[int]:
    """The live nats-servers whose JetStream store is ``store/jetstream``."""
    jetstream = f"-sd {store / 'jetstream'}"
    return [
        pid
        for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
        if alive(pid) and "nats-server" in (cmd := cmdline(pid)) and jetstream in cmd
    ]


def plugin_processes(pid: int) -> list[int]:
    return [p for p in descendants(pid) if " plugin run " in cmdline(p)]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    (state / "venom.toml").write_text(LIGHT)
    return state


def start(state: Path, log: Path) -> subprocess.Popen[str]:
    """``venom run`` on ``state``, its stderr (and its plugin processes') in ``log``."""
    cmd = [*VENOM, "run", "--config", str(state / "venom.toml"), "--state-dir", str(state)]
    with log.open("w") as err:
        return subprocess.Popen(
            [*cmd, "--no-live"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )


def stop(proc: subprocess.Popen[str], log: Path) -> str:
    """SIGTERM, wait: its log (it must exit 0)."""
    code, _ = stop_process(proc)
    assert code == 0, log.read_text()[-3000:]
    return log.read_text()


def venom_json(*args: str) -> object:
    """The JSON a client command prints (None while it fails)."""
    res = subprocess.run(
        [*VENOM, *args, "--json"], capture_output=True, text=True, timeout=60, check=False
    )
    return json.loads(res.stdout) if res.returncode == 0 else None


@pytest.fixture
def daemon(state: Path) -> Iterator[subprocess.Popen[str]]:
    """``venom run`` on ``state`` (embedded server, two plugin processes), every plugin up."""
    log = state.parent / "venom.log"
    with reaped(start(state, log)) as proc:

        def answering() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            if not (state / "nats.url").exists():
                return False
            rows = venom_json("plugins", "--nats", (state / "nats.url").read_text().strip())
            return isinstance(rows, list) and {r["name"] for r in rows} >= set(PLUGINS)

        wait_for(answering, "every plugin to answer", timeout=120)
        yield proc


def test_kill_9_of_venom_run_leaves_no_server_and_no_plugin_process(
    state: Path, daemon: subprocess.Popen[str]
) -> None:
    (server,) = servers_on(state)
    assert int((state / PID_NAME).read_text()) == server
    workers = plugin_processes(daemon.pid)
    assert len(workers) == 2, [cmdline(p) for p in workers]
    daemon.kill()
    killed = time.monotonic()
    daemon.wait()
    left = [server, *workers]
    while (left := [p for p in left if alive(p)]) and time.monotonic() - killed < 5.0:
        time.sleep(0.05)
    assert not left, f"still running 5 s after kill -9: {[cmdline(p) for p in left]}"


def test_kill_9_of_venom_run_while_its_workers_start_leaves_nothing(
    state: Path, tmp_path: Path
) -> None:
    """The beat does not wait for the workers: a daemon killed while they import.

    With the model, whose worker spends seconds importing torch before it
    could watch its parent.
    """
    with_model = [*PLUGINS, "entropy-model"]
    (state / "venom.toml").write_text(
        f"[plugins]\nprocesses = 1\nalone = ['entropy-model', 'ledger']\n"
        f"run = {json.dumps(with_model)}\n"
    )
    log = tmp_path / "venom.log"
    with reaped(start(state, log)) as proc:
        wait_for(lambda: len(plugin_processes(proc.pid)) == 3, "the workers to be spawned")
        (server,) = servers_on(state)
        workers = plugin_processes(proc.pid)
        proc.kill()
        killed = time.monotonic()
        proc.wait()
        left = [server, *workers]
        while (left := [p for p in left if alive(p)]) and time.monotonic() - killed < 5.0:
            time.sleep(0.05)
        assert not left, f"still running 5 s after kill -9: {[cmdline(p) for p in left]}"


def test_a_second_run_on_a_state_dir_in_use_is_refused_naming_the_holder(
    state: Path, daemon: subprocess.Popen[str]
) -> None:
    second = subprocess.run(
        [*VENOM, "run", "--config", str(state / "venom.toml"), "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 1, second.stderr
    assert second.stderr == (
        f"venom: error: state directory {state} is in use by pid {daemon.pid} "
        f"({state / LOCK_NAME}); stop that venom or use another --state-dir\n"
    )
    assert len(servers_on(state)) == 1  # the first one's, untouched
    stop(daemon, state.parent / "venom.log")
    assert (state / LOCK_NAME).read_text() == ""  # released: empty, no stale pid


def test_the_lock_is_released_by_a_kill_9_and_held_by_pid(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from venom.daemon.service.statelock import StateLock\n"
            "lock = StateLock(sys.argv[1]); lock.acquire(); print('held', flush=True)\n"
            "time.sleep(300)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    with reaped(holder):
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(StateDirInUse, match=f"in use by pid {holder.pid} "):
            StateLock(tmp_path).acquire()
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with StateLock(tmp_path) as lock:
        assert lock.held
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    assert not lock.held


def test_a_server_left_on_the_store_is_stopped_once_and_never_doubled(state: Path) -> None:
    # What a daemon killed before it could stop its server leaves: a live
    # nats-server on the store, its pid in the pid file.
    stale = NatsServerProcess(state)
    stale.start()
    try:
        assert servers_on(state) == [stale.pid]
        stale_pid = stale.pid
        log = state.parent / "venom.log"
        with reaped(start(state, log)) as proc:
            wait_for((state / "nats.url").exists, "the new embedded server")
            assert stale.process is not None
            assert stale.process.poll() is not None  # SIGTERMed, before the new one
            (server,) = servers_on(state)
            assert server != stale_pid
            assert int((state / PID_NAME).read_text()) == server
            err = stop(proc, log)
        stopping = [line for line in err.splitlines() if "left running on" in line]
        assert len(stopping) == 1, err[-3000:]
        assert f"stopping nats-server pid {stale_pid}" in stopping[0]
    finally:
        stale.stop()


def test_a_second_server_on_one_store_stops_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = NatsServerProcess(tmp_path), NatsServerProcess(tmp_path)
    first.start()
    try:
        with caplog.at_level(logging.WARNING, logger="venom.embedded"):
            second.start()
        assert first.process is not None
        assert first.process.wait(timeout=10) is not None
        assert servers_on(tmp_path) == [second.pid]
        assert [r.getMessage() for r in caplog.records] == [
            f"stopping nats-server pid {first.pid}: left running on {tmp_path} "
            "by a venom that is gone"
        ]
    finally:
        second.stop()
        first.stop()


def test_a_pid_file_naming_another_program_is_left_alone(tmp_path: Path) -> None:
    with reaped(subprocess.Popen(["sleep", "300"])) as other:
        (tmp_path / PID_NAME).write_text(f"{other.pid}\n")
        server = NatsServerProcess(tmp_path)
        try:
            server.start()
            assert other.poll() is None
        finally:
            server.stop()


def test_the_embedded_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from venom.daemon.bus.embedded import NatsServerProcess\n"
            "server = NatsServerProcess(sys.argv[1], jetstream=False); server.start()\n"
            "print(server.pid, flush=True); time.sleep(300)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    with reaped(starter):
        assert starter.stdout is not None
        server = int(starter.stdout.readline())
        assert alive(server)
        starter.send_signal(signal.SIGKILL)
        starter.wait()
        starter.stdout.close()
        wait_for(lambda: not alive(server), "the server to follow its parent", timeout=5)


def test_a_child_that_asks_dies_with_its_parent_even_while_it_starts(tmp_path: Path) -> None:
    # A parent (sh) that starts a child asking for the signal, then is killed.
    child = (
        "import os, sys, time\n"
        "from venom.daemon.bus.parentdeath import die_with_parent\n"
        "assert die_with_parent(os.getppid())\n"
        "print(os.getpid(), flush=True); time.sleep(300)\n"
    )
    parent = subprocess.Popen(
        ["sh", "-c", '"$0" -c "$1" & wait', sys.executable, child],
        stdout=subprocess.PIPE,
        text=True,
    )
    with reaped(parent):
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.kill()
        parent.wait()
        parent.stdout.close()
        wait_for(lambda: not alive(pid), "the child to follow its parent", timeout=5)


def test_a_child_whose_parent_is_already_gone_gets_the_signal_at_once() -> None:
    code = (
        "import os, time\n"
        "from venom.daemon.bus.parentdeath import die_with_parent\n"
        "die_with_parent(os.getppid() + 1); time.sleep(300)\n"
    )
    with reaped(subprocess.Popen([sys.executable, "-c", code])) as proc:
        assert proc.wait(timeout=60) == -signal.SIGTERM


def test_no_parent_death_signal_is_promised_from_a_worker_thread() -> None:
    assert parent_death_hook() is not None  # the main thread
    hooks: list[object] = []
    worker = threading.Thread(target=lambda: hooks.append(parent_death_hook()))
    worker.start()
    worker.join()
    assert hooks == [None]
