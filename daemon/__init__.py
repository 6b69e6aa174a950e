"""The venom daemon: arbiter, beat loop, bus, embedded NATS, CLI."""

from venom.daemon.arbiter import Arbiter
from venom.daemon.beatseed import beat_seed
from venom.daemon.bus import Bus, BusMessage, Subscription
from venom.daemon.memorybus import MemoryBus
from venom.daemon.natsbus import NatsBus
from venom.daemon.settings import VenomConfig

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
