"""systemd's notify protocol (``sd_notify(3)``), in a few lines and no dependency.

Under a ``Type=notify`` unit systemd sets ``NOTIFY_SOCKET`` (a path, or an
abstract socket written ``@name``) and, with ``WatchdogSec=``,
``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). Each state change is one datagram
of ``KEY=VALUE`` lines: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``,
``RELOADING=1`` + ``MONOTONIC_USEC=...``, ``STOPPING=1``. Without the
variable every call is a no-op, so the daemon calls it unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("venom.systemd")


class Notifier:
    """Sends notifications to systemd when run under it."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._sock: socket.socket | None = None
        self._address = ""
        self._failed = False
        path = env.get("NOTIFY_SOCKET", "")
        if path:
            # "@name" is an abstract socket: a leading NUL byte on the wire.
            self._address = "\0" + path[1:] if path.startswith("@") else path
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.watchdog_interval = self._watchdog_interval(env)

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        """Half of ``WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid.isdigit() and int(pid) != os.getpid():
            return None
        return int(usec) / 2e6

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str | int) -> bool:
        """One datagram of ``KEY=VALUE`` lines; False if not under systemd or it failed."""
        if self._sock is None:
            return False
        text = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(text.encode("utf-8", "replace"), self._address)
        except OSError as exc:
            if not self._failed:  # once: a gone socket would otherwise log every beat
                self._failed = True
                log.warning("cannot notify systemd at %r: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send(READY=1, STATUS=status) if status else self.send(READY=1)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def reloading(self) -> bool:
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=now_usec)

    def stopping(self, status: str = "stopping") -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
