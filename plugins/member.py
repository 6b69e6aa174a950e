"""One plugin's face on the bus: its micro service, its stats, its handler call.

A :class:`PluginMember` is what every plugin gets from its host, whether it
answers the pulse alone (:class:`~venom.plugins.host.PluginRunner`) or as one
member of a batch (:class:`~venom.plugins.host.BatchRunner`): its own NATS
micro service (so ``nats micro ls`` lists every plugin, SPEC 5.3), its mesh
subscriptions, its trace span per beat, and :meth:`PluginMember.answer`,
which runs the handler and turns an exception into an :class:`ErrorReply`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus, BusMessage, EndpointStats, MicroService, Subscription
from venom.daemon.observe import ConsumerTrace, ProblemLog, end_span
from venom.plugins.sdk import Plugin
from venom.schemas import SCHEMA_VERSION, Codec, ErrorReply, Pulse, Reply, Subjects

log = logging.getLogger("venom.plugins.host")


class PluginMember:
    """One plugin instance as its host runs it (see the module docstring)."""

    def __init__(
        self,
        plugin: Plugin[Any],
        *,
        queue_group: str,
        subjects: Subjects,
        codec: Codec,
        problems: ProblemLog,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.plugin = plugin
        self.name = plugin.name
        self.subjects = subjects
        self.codec = codec
        self.problems = problems
        self.endpoint = EndpointStats("pulse", subjects.pulse, queue_group)
        self.service = MicroService(
            f"venom-{self.name}",
            plugin.version,
            description=plugin.description or f"venom {plugin.role} plugin {self.name}",
            metadata={
                "venom.plugin": self.name,
                "venom.role": plugin.role,
                "venom.schema": str(SCHEMA_VERSION),
                "venom.prefix": subjects.prefix,
            },
            endpoints=[self.endpoint],
            stats_data=self._stats_data,
        )
        self._subs: list[Subscription] = []
        self._handle = plugin.handle
        #: Whether the plugin has work to do after its reply has gone out.
        self.works_after = type(plugin).after_reply is not Plugin.after_reply
        self.rejected = 0
        self.late = 0
        self.last_beat = -1
        self.last_ns = 0
        #: Pulses answered whose beat was not after the last one answered.
        self.backwards = 0
        #: Pulses the host dropped because this beat was answered already.
        self.repeats = 0
        self._trace = ConsumerTrace.messaging(
            tracer_provider,
            subjects.pulse,
            extra={"venom.plugin": self.name, "messaging.consumer.group.name": queue_group},
        )
        self._tracing = self._trace.enabled

    def _stats_data(self) -> dict[str, Any]:
        return {
            "role": self.plugin.role,
            "last_beat": self.last_beat,
            "last_ns": self.last_ns,
            "late": self.late,
            "rejected": self.rejected,
            "repeats": self.repeats,
            "backwards": self.backwards,
        }

    async def start(self, bus: Bus) -> None:
        """Subscribe to the plugin's mesh subjects and register its service."""
        for suffix in self.plugin.mesh:
            subject = f"{self.subjects.prefix}.mesh.{suffix}"
            self._subs.append(await bus.subscribe(subject, self._on_mesh))
        await self.service.start(bus)

    async def stop(self) -> None:
        await self.service.stop()
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    async def answer(self, pulse: Pulse, headers: Mapping[str, str] | None) -> tuple[Reply, str]:
        """Run the handler on ``pulse``: its reply (an ErrorReply if it raised) and the error."""
        t0 = time.perf_counter_ns()
        if pulse.beat <= self.last_beat:
            self.backwards += 1  # a beat number not after the last one answered
        self.last_beat = pulse.beat
        span = self._trace.start(headers, pulse.beat) if self._tracing else None
        error = ""
        reply: Reply
        try:
            reply = await self._handle(pulse)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.problems.report("handler error", self.name, self.subjects.pulse, error)
            reply = ErrorReply(code=500, description=error)
        elapsed = self.last_ns = time.perf_counter_ns() - t0
        self.endpoint.record(elapsed, error)
        if pulse.deadline and time.time() > pulse.deadline:
            self.late += 1  # the arbiter will not count it
        if span is not None:
            end_span(span, error)
        return reply, error

    async def after_reply(self, pulse: Pulse) -> None:
        """Run the plugin's :meth:`~venom.plugins.sdk.Plugin.after_reply` (if it has one)."""
        try:
            await self.plugin.after_reply(pulse)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.problems.report("after-reply error", self.name, self.subjects.pulse, error)
            self.endpoint.num_errors += 1
            self.endpoint.last_error = error

    def refused(self, reason: str, elapsed_ns: int) -> None:
        """Count a pulse the plugin never saw (malformed) as a failed request."""
        self.rejected += 1
        self.endpoint.record(elapsed_ns, reason)

    async def _on_mesh(self, msg: BusMessage) -> None:
        try:
            message = self.codec.mesh_decoder.decode(msg.data)
        except Exception as exc:
            self.problems.report("malformed mesh message", "", msg.subject, str(exc))
            return
        try:
            await self.plugin.on_mesh(message)
        except Exception as exc:
            self.problems.report("mesh handler error", self.name, msg.subject, str(exc))
