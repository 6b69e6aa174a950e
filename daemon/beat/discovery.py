"""The live plugin set, from NATS micro discovery and from replies (SPEC 5.3).

Every plugin process registers a micro service whose metadata carries
``venom.plugin`` (its name), ``venom.role`` and ``venom.prefix``. The arbiter
scatters ``$SRV.INFO`` every ``discovery_interval`` and gathers the answers
for ``discovery_timeout``; that gives the live plugins, their instances (P)
and the live cores (k). A plugin that replies to a pulse without being
discovered yet is live too. A plugin disappears from the set when it has
been neither discovered nor heard from for ``forget_after`` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import msgspec

from venom.daemon.bus.base import Bus

log = logging.getLogger("venom.discovery")


class _ServiceInfo(msgspec.Struct, kw_only=True):
    name: str = ""
    id: str = ""
    version: str = ""
    metadata: dict[str, str] | None = None


_info_decoder = msgspec.json.Decoder(_ServiceInfo)


class LivePlugin:
    """One plugin name on the bus, with the instances answering for it."""

    __slots__ = ("instances", "last_seen", "name", "role", "version")

    def __init__(self, name: str, role: str = "", version: str = "") -> None:
        self.name = name
        self.role = role
        self.version = version
        self.instances: set[str] = set()
        self.last_seen = 0.0


class Discovery:
    """Tracks which plugins are live under one subject prefix."""

    def __init__(
        self, *, prefix: str = "venom", forget_after: float = 3.0, quiet: bool = False
    ) -> None:
        self.prefix = prefix
        # Joins and leaves are news for the arbiter's set; a client's or the
        # supervisor's look at the bus logs them at debug.
        self._log_change = log.debug if quiet else log.info
        self.forget_after = forget_after
        self.plugins: dict[str, LivePlugin] = {}
        self.arbiters = 0
        self._live: frozenset[str] | None = None
        self._clock = time.monotonic

    def live(self) -> frozenset[str]:
        """Names of the live plugins (the same object until the set changes)."""
        if self._live is None:
            self._live = frozenset(self.plugins)
        return self._live

    @property
    def k(self) -> int:
        """Live decision cores."""
        return sum(1 for p in self.plugins.values() if p.role == "core")

    @property
    def p(self) -> int:
        """Live nodes: plugin instances plus this arbiter."""
        return sum(max(1, len(p.instances)) for p in self.plugins.values()) + 1

    def touch(self) -> None:
        """Count every known plugin as seen now (after an outage nobody could be heard)."""
        now = self._clock()
        for entry in self.plugins.values():
            entry.last_seen = now

    def heard_from(self, names: Iterable[str]) -> bool:
        """Mark plugins that replied as live; True if the set changed."""
        now = self._clock()
        changed = False
        for name in names:
            entry = self.plugins.get(name)
            if entry is None:
                entry = self.plugins[name] = LivePlugin(name)
                self._live = None
                changed = True
                self._log_change("plugin %s joined (by reply)", name)
            entry.last_seen = now
        return changed

    def absorb(self, responses: Iterable[bytes]) -> bool:
        """Fold ``$SRV.INFO`` responses into the live set; True if it changed."""
        now = self._clock()
        seen: dict[str, LivePlugin] = {}
        arbiters = 0
        for data in responses:
            try:
                info = _info_decoder.decode(data)
            except msgspec.DecodeError:
                continue
            meta = info.metadata or {}
            if meta.get("venom.prefix", "venom") != self.prefix:
                continue
            if meta.get("venom.role") == "arbiter":
                arbiters += 1
                continue
            name = meta.get("venom.plugin")
            if not name:
                continue
            entry = seen.get(name)
            if entry is None:
                entry = seen[name] = LivePlugin(name, meta.get("venom.role", ""), info.version)
            entry.instances.add(info.id)
            entry.last_seen = now
        self.arbiters = arbiters
        self._live = None
        before = {n: len(p.instances) for n, p in self.plugins.items()}
        for name, old in list(self.plugins.items()):
            if name not in seen and now - old.last_seen > self.forget_after:
                del self.plugins[name]
                self._log_change("plugin %s left", name)
        for name, entry in seen.items():
            if name not in self.plugins:
                self._log_change(
                    "plugin %s joined (%s, %d instance(s))", name, entry.role, len(entry.instances)
                )
            self.plugins[name] = entry
        return before != {n: len(p.instances) for n, p in self.plugins.items()}

    async def refresh(self, bus: Bus, timeout: float) -> bool:
        """Scatter ``$SRV.INFO`` and absorb what answers within ``timeout``."""
        replies = await bus.request_many("$SRV.INFO", b"", timeout=timeout)
        return self.absorb(m.data for m in replies)
