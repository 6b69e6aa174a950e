"""Shared test helpers (not fixtures): configs, small plugins, stopping processes.

Processes: :func:`stop_process` here; :func:`tests.processes.reaped` for a
``with`` block that kills a process and its tree however the test ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import anyio
import msgspec

from tests.processes import kill_tree
from venom.daemon.config.settings import BeatConfig, PluginsConfig, RunConfig, VenomConfig
from venom.plugins.sdk import NoConfig, Plugin
from venom.schemas import EstimateReply, Pulse, Reply, Role


def make_config(prefix: str = "venom", **beat: Any) -> VenomConfig:
    """A config for tests: no live line, fast discovery, beat settings from kwargs."""
    plugins = beat.pop("plugins", PluginsConfig(run=[]))
    cfg = VenomConfig(
        beat=BeatConfig(**{"discovery_interval": 0.2, "discovery_timeout": 0.1, **beat}),
        plugins=plugins,
        run=RunConfig(live=False),
    )
    return msgspec.structs.replace(cfg, nats=msgspec.structs.replace(cfg.nats, prefix=prefix))


class Echo(Plugin[NoConfig]):
    """Answers every pulse with its beat number."""

    name: ClassVar[str] = "echo"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"

    async def handle(self, pulse: Pulse) -> Reply:
        return EstimateReply(estimator=self.name, values={"beat": float(pulse.beat)})


class Switchable(Plugin[NoConfig]):
    """Answers while switched on; hangs (holding its queue) while off."""

    name: ClassVar[str] = "switchable"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on = anyio.Event()
        self._on.set()
        self.delay = 0.0
        self.handled: list[int] = []

    def switch(self, on: bool) -> None:
        if on:
            self._on.set()
        elif self._on.is_set():
            self._on = anyio.Event()

    async def handle(self, pulse: Pulse) -> Reply:
        if self.delay:
            await anyio.sleep(self.delay)
        await self._on.wait()
        self.handled.append(pulse.beat)
        return EstimateReply(estimator=self.name, values={"beat": float(pulse.beat)})


def stop_process(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str]:
    """SIGTERM ``proc`` and wait: (exit code, stderr; '' when not piped).

    Not stopped in time: it and every process below it (its nats-server and
    plugin processes, in sessions of their own) are killed, and the test fails.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        _, err = proc.communicate()
        raise AssertionError(f"did not stop within {timeout} s:\n{(err or '')[-3000:]}") from None
    return proc.returncode, err or ""


# The venom command as a user runs it (a real process).

VENOM = [sys.executable, "-m", "venom.daemon"]
WAIT = 120.0  # seconds: deadlines for conditions, met many times over on a slow machine


def venom(*args: str, timeout: float = WAIT, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VENOM, *args], capture_output=True, text=True, timeout=timeout, check=False, **kw
    )  # type: ignore[call-overload, no-any-return]


def spawn(
    *args: str, log: Path, env: dict[str, str] | None = None, own_session: bool = False
) -> subprocess.Popen[str]:
    """A venom process whose stderr goes to ``log``.

    A file, not a pipe: nobody reads a pipe while the test waits, and a daemon
    whose stderr pipe is full stops at its next log line.
    """
    with log.open("w") as err:
        return subprocess.Popen(
            [*VENOM, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=own_session,
        )


def stop(
    proc: subprocess.Popen[str], log: Path, sig: int = signal.SIGTERM, timeout: float = WAIT
) -> tuple[int, str]:
    """Signal ``proc`` (its process group for SIGINT, as a terminal's Ctrl-C) and wait.

    (exit code, what it logged). Not stopped in time: it and everything below
    it are killed, and the test fails.
    """
    if proc.poll() is None:
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait()
        raise AssertionError(
            f"did not stop within {timeout} s:\n{log.read_text()[-3000:]}"
        ) from None
    return proc.returncode, log.read_text()


def wait_for(cond: object, timeout: float = WAIT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_beat(url: str, beat: int) -> int:
    """Wait until the leading arbiter at ``url`` is past ``beat``; the beat it is at."""
    seen = [0]

    def past() -> bool:
        out = venom("status", "--nats", url, timeout=30)
        if out.returncode == 0:
            seen[0] = int(json.loads(out.stdout).get("beat", 0))
        return seen[0] >= beat

    wait_for(past, what=f"beat {beat}")
    return seen[0]
