"""What a venom process tells systemd and health checks: alive, ready, why not.

:class:`ServiceState` is fed by the process's loop (the arbiter's beat
loop, the plugin host's idle loop) through :meth:`ServiceState.turn`: each
turn marks the process alive and, when due, sends systemd ``WATCHDOG=1``
(so a hung loop gets the unit restarted) and a ``STATUS=`` line. Readiness
is asked of the process (connected, first beat closed, not holding beats)
when it matters: the first ``READY=1``, a status line, a health request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio

from venom.daemon.service.sdnotify import Notifier

log = logging.getLogger("venom.service")

#: (ready, why not) of the process right now.
Readiness = Callable[[], tuple[bool, str]]


def _always_ready() -> tuple[bool, str]:
    return True, ""


class ServiceState:
    """Liveness, readiness and the systemd notifications of one process."""

    def __init__(
        self,
        notifier: Notifier | None = None,
        *,
        role: str,
        stall_after: float = 10.0,
        status_every: float = 2.0,
    ) -> None:
        self.notifier = notifier or Notifier()
        self.role = role
        self.stall_after = stall_after
        self.status_every = status_every
        self.readiness: Readiness = _always_ready
        #: One line for ``STATUS=`` and ``/status`` (beat, rate, last decision ...).
        self.describe: Callable[[], str] = lambda: role
        #: Extra fields for ``/status``.
        self.details: Callable[[], dict[str, Any]] = dict
        self.started = time.monotonic()
        self.last_turn = self.started
        self.stopping = False
        #: The process's loop runs (before that, :meth:`starting` keeps it alive).
        self.looping = False
        self._ready_sent = False
        self._was_ready = False
        self._interval = self.notifier.watchdog_interval
        self._next_watchdog = self.started
        self._next_status = self.started

    def turn(self) -> None:
        """The loop went round once: alive; watchdog, status and READY when due."""
        self.looping = True
        self.tick()

    async def starting(self) -> None:
        """Keep systemd's watchdog fed while the process starts (until the loop turns)."""
        while not self.looping:
            self.tick()
            await anyio.sleep(min(1.0, self._interval or 1.0))

    def tick(self) -> None:
        """Watchdog, status and READY when due."""
        now = time.monotonic()
        self.last_turn = now
        if self._interval is not None and now >= self._next_watchdog:
            self._next_watchdog = now + self._interval
            self.notifier.watchdog()
        if now >= self._next_status or not self._ready_sent:
            self._next_status = now + self.status_every
            self._report()

    def _report(self) -> None:
        ready, why = self.readiness()
        if ready != self._was_ready:
            self._was_ready = ready
            if self._ready_sent:  # the first READY is news enough
                (log.info if ready else log.warning)(
                    "%s %s", self.role, "ready again" if ready else f"not ready: {why}"
                )
        text = self.describe() if ready else f"not ready: {why} | {self.describe()}"
        if ready and not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready(text)
            log.info("%s ready", self.role)
        elif self.notifier.enabled:
            self.notifier.status(text)

    def alive(self) -> bool:
        """Starting, or the loop turned within ``stall_after`` seconds."""
        return time.monotonic() - self.last_turn < self.stall_after

    def snapshot(self) -> dict[str, Any]:
        """``/status``: alive, ready, why not, and the process's details."""
        ready, why = self.readiness()
        return {
            "role": self.role,
            "alive": self.alive(),
            "ready": ready and not self.stopping,
            "reason": "stopping" if self.stopping else why,
            "since_turn_s": round(time.monotonic() - self.last_turn, 3),
            "uptime_s": round(time.monotonic() - self.started, 1),
            "status": self.describe(),
            **self.details(),
        }

    def reloading(self) -> None:
        self.notifier.reloading()

    def reloaded(self) -> None:
        self.notifier.ready(self.describe())

    def stop(self, status: str = "stopping") -> None:
        """Shutting down: not ready any more; systemd gets ``STOPPING=1``."""
        if not self.stopping:
            self.stopping = True
            self.notifier.stopping(status)
