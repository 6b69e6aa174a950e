"""The venom daemon: arbiter, beat loop, bus, embedded NATS, CLI.

The names below load on first use (PEP 562), so importing a module inside
the package, as ``venom.plugins`` does with the bus faces, does not load the
arbiter, nats-py or OpenTelemetry's SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from venom.daemon.arbiter import Arbiter
    from venom.daemon.beatseed import beat_seed
    from venom.daemon.bus import Bus, BusMessage, Subscription
    from venom.daemon.memorybus import MemoryBus
    from venom.daemon.natsbus import NatsBus
    from venom.daemon.settings import VenomConfig

#: Each public name and the module that defines it.
_WHERE = {
    "Arbiter": "venom.daemon.arbiter",
    "Bus": "venom.daemon.bus",
    "BusMessage": "venom.daemon.bus",
    "MemoryBus": "venom.daemon.memorybus",
    "NatsBus": "venom.daemon.natsbus",
    "Subscription": "venom.daemon.bus",
    "VenomConfig": "venom.daemon.settings",
    "beat_seed": "venom.daemon.beatseed",
}

__all__ = [
    "Arbiter",
    "Bus",
    "BusMessage",
    "MemoryBus",
    "NatsBus",
    "Subscription",
    "VenomConfig",
    "beat_seed",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'venom.daemon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain one
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
