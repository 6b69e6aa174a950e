"""A plugin that answers every pulse at once; used by ``venom bench``."""

from __future__ import annotations

from typing import ClassVar

from venom.plugins.sdk import NoConfig, Plugin
from venom.schemas import EstimateReply, Pulse, Reply, Role


class NoopPlugin(Plugin[NoConfig]):
    """Replies with an empty estimate. ``name`` is overridden per bench instance."""

    name: ClassVar[str] = "noop"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = "answers every pulse immediately (benchmarks)"

    async def handle(self, pulse: Pulse) -> Reply:
        return EstimateReply(estimator=self.name)


def noop_class(name: str) -> type[NoopPlugin]:
    """A NoopPlugin subclass called ``name`` (distinct queue group per name)."""
    return type(f"Noop_{name.replace('-', '_')}", (NoopPlugin,), {"name": name})
