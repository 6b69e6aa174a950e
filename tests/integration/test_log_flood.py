"""A stderr nobody reads does not stop the daemon (its logging is queued, drops counted).

``venom run`` starts with its stderr on a pipe that the test leaves unread
while a chatty plugin, hosted in the daemon's own process, logs dozens of
lines a beat: the pipe fills, then the log queue. The daemon keeps beating
(``venom status`` over NATS), and once the test reads the pipe one line
says how many records were dropped; SIGTERM then stops it with exit 0,
its last line (``stopped after ...``) written out.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.processes import kill_tree
from venom.plugins.sdk import Plugin
from venom.schemas import GuardVerdict, Pulse, Reply, Role

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0
#: Lines the chatty plugin logs per beat.
LINES_PER_BEAT = 50
#: Beats the daemon must go on with the pipe full (some 10 s at the 0.01 s period):
#: 50,000 lines, five times what the log queue holds.
BEATS_WHILE_FULL = 1000


class Chatter(Plugin[Any]):
    """A guard that allows every beat and logs LINES_PER_BEAT lines about it."""

    name: ClassVar[str] = "chatter"
    role: ClassVar[Role] = "guard"
    version: ClassVar[str] = "1.0.0"

    async def handle(self, pulse: Pulse) -> Reply:
        for i in range(LINES_PER_BEAT):
            self.log.warning("beat %d line %d %s", pulse.beat, i, "x" * 150)
        return GuardVerdict(guard=self.name, allow=True)


CONFIG = f"""
[plugins]
processes = 0
run = ["optical-plant", "kalman", "thermal", "gate", "regen-core", "balance-core",
       "{__name__}:Chatter"]
"""


def wait_for(cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT:g} s waiting for {what}")
        time.sleep(0.1)


def venom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "venom.daemon", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
        cwd=ROOT,
    )


def beat(state: Path) -> int | None:
    """The daemon's beat, asked over NATS; None while it does not answer."""
    res = venom("status", "--state-dir", str(state), "--timeout", "2")
    return int(json.loads(res.stdout)["beat"]) if res.returncode == 0 else None


def unread(fd: int) -> int:
    """Bytes waiting in the pipe behind ``fd``."""
    return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4), sys.byteorder)


def test_an_unread_stderr_neither_stalls_nor_stops_the_daemon(tmp_path: Path) -> None:
    config, state = tmp_path / "venom.toml", tmp_path / "state"
    config.write_text(CONFIG)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "venom.daemon", "run", "--config", str(config)),
            *("--state-dir", str(state), "--period", "0.01", "--no-live"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stderr is not None
    err = proc.stderr.fileno()
    chunks: list[bytes] = []
    try:
        # Full: no room for another line (a write of up to PIPE_BUF bytes goes in whole).
        full = fcntl.fcntl(err, fcntl.F_GETPIPE_SZ) - select.PIPE_BUF
        wait_for(lambda: unread(err) >= full, "stderr's pipe to fill")
        wait_for(lambda: beat(state) is not None, "venom status to answer")
        full_at = beat(state) or 0
        # The pipe stays full, unread: the beats go on all the same.
        wait_for(lambda: (beat(state) or 0) >= full_at + BEATS_WHILE_FULL, "beats, stderr full")
        assert unread(err) >= full

        def read() -> None:
            while chunk := os.read(err, 65536):
                chunks.append(chunk)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        dropped_line = b"records dropped: stderr was not being read"
        wait_for(lambda: dropped_line in b"".join(chunks), "the dropped-records line")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=WAIT) == 0
        reader.join(WAIT)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
        proc.wait()
        proc.stderr.close()
    entries = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    dropped = [e["msg"] for e in entries if e["logger"] == "venom.logs"]
    assert dropped
    assert all(int(m.split()[1]) > 0 for m in dropped)
    assert any(e["msg"].startswith("stopped after") for e in entries)  # written out at exit
