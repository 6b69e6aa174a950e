"""Plugin worker processes of ``venom run``, supervised.

With ``plugins.processes = N`` (default 1), ``venom run`` hosts the plugins
that answer the pulse in N child processes (``python -m venom.daemon plugin
run ...``), so the plugins' work runs on other cores than the arbiter's beat
loop, and a plugin that crashes its process takes only that process down.
Each child gets the daemon's effective config as a JSON file (the resolved
URL of the bus included) and the same state directory.

:class:`PluginProcesses` starts the children and, with ``wait=True`` (the
back-to-back runs that promise determinism), waits until discovery sees
every plugin they host; otherwise the beat starts at once and a plugin that
is not up yet is missing from the first beats, as in any later beat. It
restarts a child that exits while the daemon runs (after ``restart_delay``,
as systemd's ``Restart=on-failure`` would), but a child that fails the same
way before it was ready ``give_up_after`` times in a row will not get
better by itself: ``on_fatal`` is told why, in one line, and the daemon
stops. On exit it sends SIGTERM and waits for each child to stop.

A child talks to its supervisor on its stdout, a line at a time: ``ready``
once its plugins answer, ``error: <reason>`` when it cannot start.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
import msgspec

from venom.daemon.beat.discovery import Discovery
from venom.daemon.bus.base import Bus
from venom.daemon.bus.credentials import login_for
from venom.daemon.config.settings import VenomConfig
from venom.plugins.registry import load_plugin_class
from venom.schemas import ConfigError, PluginStartError

log = logging.getLogger("venom.supervisor")


#: What belongs to the daemon alone: systemd talks to the main process (the unit's
#: NotifyAccess=main), and the health endpoint's port is the daemon's.
_DAEMON_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID")


def child_environment() -> dict[str, str]:
    """The environment of a plugin process: the daemon's, less what is the daemon's own."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in _DAEMON_ONLY and not k.startswith("VENOM_HEALTH_")
    }


def plugin_class_names(specs: list[str]) -> list[str]:
    """The class names (``Plugin.name``) of the plugins ``specs`` name."""
    return [load_plugin_class(spec).name for spec in specs]


def _nothing(*_: object) -> None:
    return None


class StartFailures:
    """Counts a child's failures before it was ready; the same reason in a row adds up."""

    __slots__ = ("count", "reason")

    def __init__(self) -> None:
        self.reason = ""
        self.count = 0

    def failed(self, reason: str) -> int:
        """Record one failed start; how many in a row failed this way."""
        self.count = self.count + 1 if reason == self.reason else 1
        self.reason = reason
        return self.count

    def started(self) -> None:
        self.reason, self.count = "", 0


def split(names: list[str], processes: int) -> list[list[str]]:
    """``names`` in ``processes`` groups of near-equal size, order kept."""
    if processes < 1:
        raise ConfigError("plugins.processes must be >= 1 to split", key="plugins.processes")
    processes = min(processes, len(names))
    size, extra = divmod(len(names), processes)
    groups, start = [], 0
    for i in range(processes):
        end = start + size + (1 if i < extra else 0)
        groups.append(names[start:end])
        start = end
    return [g for g in groups if g]


class PluginProcesses:
    """Runs plugin groups as supervised child processes (async context manager)."""

    def __init__(
        self,
        groups: list[list[str]],
        config: VenomConfig,
        url: str,
        state_dir: Path,
        bus: Bus,
        *,
        wait: bool = False,
        on_ready: Callable[[], None] = _nothing,
        on_fatal: Callable[[str], None] = _nothing,
        start_timeout: float = 60.0,
        restart_delay: float = 1.0,
        stop_timeout: float = 10.0,
        give_up_after: int = 3,
        logins: dict[str, str] | None = None,
    ) -> None:
        self.groups = groups
        #: The embedded server's passwords by user: each group logs in as its user.
        self.logins = logins
        self.bus = bus
        self.state_dir = state_dir
        self.start_timeout = start_timeout
        self.restart_delay = restart_delay
        self.stop_timeout = stop_timeout
        self.give_up_after = give_up_after
        self.wait = wait
        self.on_ready = on_ready
        self.on_fatal = on_fatal
        #: Why the children cannot start ("" while they can): set once, then stopping.
        self.fatal = ""
        self._fatal = anyio.Event()
        self.prefix = config.nats.prefix
        self.config_path = state_dir / "run" / "plugins.json"
        self.config = msgspec.structs.replace(
            config, nats=msgspec.structs.replace(config.nats, url=url)
        )
        self.processes: list[anyio.abc.Process | None] = [None] * len(groups)
        self.ready = [anyio.Event() for _ in groups]
        self._stopping = False
        self._tg: anyio.abc.TaskGroup | None = None

    def command(self, group: list[str]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "venom.daemon",
            "plugin",
            "run",
            *group,
            "--config",
            str(self.config_path),
            "--state-dir",
            str(self.state_dir),
            "--watch-parent",
            str(os.getpid()),
        ]

    def environment(self, group: list[str]) -> dict[str, str]:
        """The child's environment; with ``logins``, its user (the ledger's if it hosts it)."""
        env = child_environment()
        if self.logins is not None:
            user = login_for(plugin_class_names(group))
            env["VENOM_NATS_USER"] = user
            env["VENOM_NATS_PASSWORD"] = self.logins[user]
        return env

    async def __aenter__(self) -> Self:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.config_path.with_suffix(".tmp")
        # The children serve no health endpoint of their own: the daemon's covers them.
        config = msgspec.structs.replace(
            self.config, health=msgspec.structs.replace(self.config.health, enabled=False)
        )
        tmp.write_bytes(msgspec.json.encode(config))
        tmp.replace(self.config_path)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            for i in range(len(self.groups)):
                self._tg.start_soon(self._supervise, i)
            if self.wait:
                await self.wait_ready([n for g in self.groups for n in g])
        except BaseException:
            await self.__aexit__(*sys.exc_info())
            raise
        return self

    async def wait_ready(self, names: list[str]) -> None:
        """Wait until discovery sees every plugin in ``names`` (by class name or spec)."""
        wanted = {n.rsplit(":", 1)[-1] for n in names}
        discovery = Discovery(prefix=self.prefix, forget_after=3600.0, quiet=True)
        missing = wanted
        with anyio.move_on_after(self.start_timeout):
            while True:
                await discovery.refresh(self.bus, 0.2)
                seen = set(discovery.plugins)
                # A module:Class spec names the class; its plugin name is what answers.
                missing = {n for n in wanted if n not in seen and ":" not in n}
                if not missing and len(seen) >= len(wanted):
                    log.info("plugin processes ready: %d plugins", len(seen))
                    return
                if self.fatal:
                    raise PluginStartError(self.fatal)
                with anyio.move_on_after(0.1):
                    await self._fatal.wait()
        raise PluginStartError(
            f"plugin processes not ready after {self.start_timeout:g} s; "
            f"missing: {', '.join(sorted(missing)) or 'some module:Class plugins'}"
        )

    async def _supervise(self, index: int) -> None:
        group = self.groups[index]
        failures = StartFailures()
        while not self.stopping():
            # Own session: a Ctrl-C to the terminal reaches the daemon only, which
            # stops the children in order (the ledger last, after the final record).
            process = await anyio.open_process(
                self.command(group),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=None,
                start_new_session=True,
                env=self.environment(group),
            )
            ready = self.ready[index] = anyio.Event()
            self.processes[index] = process
            log.info("plugin process %d (pid %d): %s", index, process.pid, ", ".join(group))
            said: list[str] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._read_lines, process, ready, said)
                code = await process.wait()
            if self.stopping():
                return
            names = ", ".join(group)
            if said and said[0] == "ready":
                failures.started()
                log.warning(
                    "plugin process %d (%s) exited with %s; restarting in %g s",
                    index,
                    names,
                    code,
                    self.restart_delay,
                )
            else:
                reason = said[-1] if said else f"exited with code {code} before it was ready"
                if failures.failed(reason) >= self.give_up_after:
                    self._give_up(f"plugin process ({names}) failed to start: {reason}", failures)
                    return
                log.warning(
                    "plugin process %d (%s) failed to start: %s; retrying in %g s",
                    index,
                    names,
                    reason,
                    self.restart_delay,
                )
            await anyio.sleep(self.restart_delay)

    def _give_up(self, reason: str, failures: StartFailures) -> None:
        if not self.fatal:
            self.fatal = f"{reason} ({failures.count} times in a row)"
            self._fatal.set()
            log.error("%s: stopping", self.fatal)
            self.on_fatal(self.fatal)

    async def _read_lines(
        self, process: anyio.abc.Process, ready: anyio.Event, said: list[str]
    ) -> None:
        """Follow what the child says: ``ready`` sets ``ready``; ``error: ...`` lines are kept.

        ``said`` gets ``"ready"`` first when the child came up, else its error
        reasons. ``ready`` is set when the stdout closes too (the child is gone).
        """
        buffer = b""
        try:
            if process.stdout is not None:
                async for chunk in process.stdout:
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        self._heard(raw.decode(errors="replace").strip(), ready, said)
        finally:
            ready.set()

    def _heard(self, line: str, ready: anyio.Event, said: list[str]) -> None:
        if line == "ready" and not ready.is_set():
            said.insert(0, "ready")
            ready.set()
            self.on_ready()
        elif line.startswith("error: "):
            said.append(line.removeprefix("error: "))

    async def _stop_one(self, index: int, process: anyio.abc.Process) -> None:
        # A child still starting (a restart a moment ago) would die of SIGTERM
        # before its handlers are in place; let it come up first, so that a
        # ledger drains the stream and plugins save their state.
        with anyio.move_on_after(self.stop_timeout):
            await self.ready[index].wait()
        if process.returncode is None:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                return
        with anyio.move_on_after(self.stop_timeout) as scope:
            await process.wait()
        if scope.cancelled_caught:
            log.warning("plugin process %d did not stop in time: killing it", process.pid)
            process.kill()
            await process.wait()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopping = True
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for index, process in enumerate(self.processes):
                    if process is not None:
                        tg.start_soon(self._stop_one, index, process)
        self.config_path.unlink(missing_ok=True)
        supervisors, self._tg = self._tg, None
        if supervisors is not None:
            supervisors.cancel_scope.cancel()
            await supervisors.__aexit__(exc_type, exc, tb)

    def stopping(self) -> bool:
        """Whether the children are being stopped (a method: it changes under our feet)."""
        return self._stopping
