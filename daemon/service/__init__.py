"""One process's life: ``venom run``, ``venom plugin run``, and what they share.

run (the daemon around the arbiter), worker (a process hosting plugins),
lifecycle (the set-up both share: codec, subjects, telemetry, health,
connections, hosted plugins, signals), state (alive, ready, systemd),
supervisor (plugin worker processes), health (HTTP probes),
sdnotify, statelock (one daemon per state directory), preflight (checks
before anything starts), simulate (the loop in memory). Names load on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.service.health import HealthServer
    from venom.daemon.service.lifecycle import Process, build_plugins
    from venom.daemon.service.preflight import check_plugins, check_start
    from venom.daemon.service.run import run_daemon
    from venom.daemon.service.sdnotify import Notifier
    from venom.daemon.service.simulate import Simulation
    from venom.daemon.service.state import ServiceState
    from venom.daemon.service.statelock import StateLock
    from venom.daemon.service.supervisor import PluginProcesses
    from venom.daemon.service.worker import place_plugins, run_plugins

#: Each public name and the module that defines it.
_WHERE = {
    "HealthServer": "venom.daemon.service.health",
    "Process": "venom.daemon.service.lifecycle",
    "build_plugins": "venom.daemon.service.lifecycle",
    "check_plugins": "venom.daemon.service.preflight",
    "check_start": "venom.daemon.service.preflight",
    "run_daemon": "venom.daemon.service.run",
    "Notifier": "venom.daemon.service.sdnotify",
    "Simulation": "venom.daemon.service.simulate",
    "ServiceState": "venom.daemon.service.state",
    "StateLock": "venom.daemon.service.statelock",
    "PluginProcesses": "venom.daemon.service.supervisor",
    "place_plugins": "venom.daemon.service.worker",
    "run_plugins": "venom.daemon.service.worker",
}

__all__ = [
    "HealthServer",
    "Notifier",
    "PluginProcesses",
    "Process",
    "ServiceState",
    "Simulation",
    "StateLock",
    "build_plugins",
    "check_plugins",
    "check_start",
    "place_plugins",
    "run_daemon",
    "run_plugins",
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
