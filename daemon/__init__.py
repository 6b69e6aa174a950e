"""The venom daemon, in layers that follow the data path (../shared/LAYOUT.md).

From the top: ``cli`` and ``bench`` → ``service`` (one process's life) →
``beat`` (the loop) beside ``venom.plugins`` → ``bus`` → ``observe`` →
``config`` → ``venom.schemas``. Each subpackage's ``__init__`` is its face;
its names, and the few below, load on first use (PEP 562), so importing a
face, as ``venom.plugins`` does with the bus and observe faces, loads
neither the arbiter, nor nats-py, nor OpenTelemetry's SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.beat.arbiter import Arbiter
    from venom.daemon.bus.base import Bus, BusMessage, Subscription
    from venom.daemon.bus.memorybus import MemoryBus
    from venom.daemon.bus.natsbus import NatsBus
    from venom.daemon.config.settings import VenomConfig

#: Each public name and the module that defines it.
_WHERE = {
    "Arbiter": "venom.daemon.beat.arbiter",
    "Bus": "venom.daemon.bus.base",
    "BusMessage": "venom.daemon.bus.base",
    "MemoryBus": "venom.daemon.bus.memorybus",
    "NatsBus": "venom.daemon.bus.natsbus",
    "Subscription": "venom.daemon.bus.base",
    "VenomConfig": "venom.daemon.config.settings",
}

__all__ = [
    "Arbiter",
    "Bus",
    "BusMessage",
    "MemoryBus",
    "NatsBus",
    "Subscription",
    "VenomConfig",
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
