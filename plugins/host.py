"""Runs plugins on a bus: one message per host per beat (SPEC 2.2).

- :class:`PluginRunner` serves a plugin hosted alone: it subscribes to the
  pulse in the plugin's queue group (``venom.<plugin>``), decodes the pulse,
  calls the handler and answers with the plugin's reply under a
  ``Venom-Plugin`` header.
- :class:`BatchRunner` serves several plugins in one process: it subscribes
  once, in the host's queue group (``venom.host.<set>``), decodes the pulse
  once, runs every member's handler and answers with one
  :class:`~venom.schemas.ReplyBatch` under a ``Venom-Host`` header. A batch
  is as late as its slowest member, so before a member whose handler would
  end past the deadline (by its recent cost) the replies made so far go out
  as a batch of their own.
- :class:`PluginHost` opens the plugins, runs them the one way or the other,
  and closes them in reverse order.

Either way each plugin keeps its own micro service and counters
(:class:`~venom.plugins.member.PluginMember`). Malformed pulses and handler
failures become error replies (NATS micro error headers on the message, an
:class:`ErrorReply` per member); they are counted and logged once, never
fatal. A pulse for a beat the process has already answered (a second arbiter,
a redelivery) is dropped and counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus
from venom.plugins.batch import BatchRunner
from venom.plugins.member import PluginMember
from venom.plugins.runner import PluginRunner
from venom.plugins.sdk import Plugin
from venom.schemas import Codec, Subjects

__all__ = ["BatchRunner", "PluginHost", "PluginRunner"]


class PluginHost:
    """Opens plugins, runs them on the bus, and closes them in reverse order.

    One plugin is served by a :class:`PluginRunner`; several by one
    :class:`BatchRunner` (``batch=False`` serves each alone, as separate
    processes would).
    """

    def __init__(
        self,
        plugins: Sequence[Plugin[Any]],
        bus: Bus,
        *,
        subjects: Subjects | None = None,
        codec: Codec | None = None,
        tracer_provider: TracerProvider | None = None,
        batch: bool | None = None,
    ) -> None:
        self.plugins = list(plugins)
        self.bus = bus
        subjects = subjects or Subjects()
        codec = codec or Codec()
        batched = len(self.plugins) > 1 if batch is None else batch and len(self.plugins) > 0
        #: Plugins hosted alone; empty when they answer in batches.
        self.runners: list[PluginRunner] = []
        self.batch: BatchRunner | None = None
        if batched:
            self.batch = BatchRunner(
                self.plugins, bus, subjects=subjects, codec=codec, tracer_provider=tracer_provider
            )
        else:
            self.runners = [
                PluginRunner(
                    p, bus, subjects=subjects, codec=codec, tracer_provider=tracer_provider
                )
                for p in self.plugins
            ]
        self._stack = AsyncExitStack()

    @property
    def members(self) -> list[PluginMember]:
        """Every plugin's member, in order."""
        if self.batch is not None:
            return self.batch.members
        return [r.member for r in self.runners]

    async def __aenter__(self) -> Self:
        stack = self._stack
        try:
            for plugin in self.plugins:
                await stack.enter_async_context(plugin)
            for runner in [*self.runners, *([self.batch] if self.batch else [])]:
                await runner.start()
                stack.push_async_callback(runner.stop)
            # Started means reachable: the server has every subscription.
            await self.bus.flush()
        except BaseException:
            await stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
