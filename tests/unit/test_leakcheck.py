"""The orphan check itself (tests/leakcheck.py), on real processes in a pytest of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import MARKER_VAR, alive, descendants, kill, kill_tree, marked, reaped

ROOT = Path(__file__).resolve().parents[2]

INNER = """
import os, subprocess, time
from pathlib import Path

import pytest

PIDS = Path(os.environ["LEAK_PIDS"])


def sleeper(**kw):
    proc = subprocess.Popen(["sleep", "300"], **kw)
    with PIDS.open("a") as f:
        f.write(f"{proc.pid}\\n")
    return proc


@pytest.fixture(scope="session")
def session_sleeper():
    return sleeper()  # never stopped: the session-end check must catch it


def test_clean():
    proc = sleeper()
    proc.kill()
    proc.wait()


def test_leaks_one_in_its_own_session():
    sleeper(start_new_session=True)


def test_uses_the_session_fixture(session_sleeper):
    pass


def test_waits_to_be_interrupted():
    if os.environ.get("LEAK_WAIT"):
        sleeper(start_new_session=True)
        Path(os.environ["LEAK_WAIT"]).write_text("ready")
        time.sleep(120)
"""


def inner_pytest(tmp_path: Path, *args: str, wait: bool = False) -> subprocess.Popen[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEAK_PIDS": str(tmp_path / "pids")}
    env.pop("PYTEST_ADDOPTS", None)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # a quick start: only this plugin
    if wait:
        env["LEAK_WAIT"] = str(tmp_path / "ready")
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.leakcheck", "-p", "no:cacheprovider"]
    return subprocess.Popen(
        [*cmd, "--leak-grace", "0.5", "-q", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def started(tmp_path: Path) -> list[int]:
    path = tmp_path / "pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_the_scan_finds_a_child_by_its_marker_and_kill_tree_takes_its_children() -> None:
    marker = os.environ[MARKER_VAR]
    # A shell with a sleep in a session of its own below it.
    with reaped(
        subprocess.Popen(["sh", "-c", "setsid sleep 300 & wait"], stdin=subprocess.DEVNULL)
    ) as shell:
        deadline = time.monotonic() + 30
        while not descendants(shell.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        (child,) = descendants(shell.pid)
        found = marked(marker)
        assert {shell.pid, child} <= set(found)
        assert "sleep 300" in found[child]
        assert os.getpid() not in found
        assert kill_tree(shell.pid) == []
        assert not alive(child)
        assert child not in marked(marker)


def test_a_leak_fails_its_test_and_one_left_at_the_end_fails_the_run(tmp_path: Path) -> None:
    with reaped(inner_pytest(tmp_path)) as proc:
        out, _ = proc.communicate(timeout=120)
    pids = started(tmp_path)
    try:
        assert len(pids) == 3, out
        clean, leaked, session = pids
        assert proc.returncode == 1, out
        assert "4 passed, 1 error" in out
        assert "ERROR at teardown of test_leaks_one_in_its_own_session" in out
        after_test = "1 process(es) started by this test still ran after it, killed:"
        assert f"{after_test}\n  pid {leaked}: sleep 300" in out
        at_end = "1 process(es) the suite started still ran at its end, killed:"
        assert f"{at_end}\n  pid {session}: sleep 300" in out
        assert str(clean) not in out
        assert not any(alive(p) for p in pids)
    finally:
        kill(pids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_kills_what_the_test_started(tmp_path: Path, sig: int) -> None:
    with reaped(inner_pytest(tmp_path, "-k", "waits_to_be_interrupted", wait=True)) as proc:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the inner test never started its process"
            time.sleep(0.05)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    pids = started(tmp_path)
    try:
        assert len(pids) == 1, out
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
        assert not alive(pids[0]), out
    finally:
        kill(pids)
