"""Shared test helpers (not fixtures): configs, small plugins, stopping processes.

Processes: :func:`stop_process` here; :func:`tests.processes.reaped` for a
``with`` block that kills a process and its tree however the test ends.
"""

from __future__ import annotations

import signal
import subprocess
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
