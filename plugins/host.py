"""Runs plugins on a bus: the pulse subscription, the reply, the micro service.

:class:`PluginRunner` wires one plugin instance: it subscribes to the pulse
in the plugin's queue group (so replicas answer once between them), decodes
the pulse with a decoder built once, calls the handler, encodes the reply and
publishes it to the beat's reply subject with ``Venom-Plugin``/``Venom-Beat``
headers. Malformed pulses and handler failures become error replies with NATS
micro error headers; they are counted and logged once, never fatal.

:class:`PluginHost` runs several runners (``venom run`` hosts the default set
in-process; ``venom plugin run`` hosts one) as one async context manager.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Self

from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus, BusMessage, Subscription, error_headers
from venom.daemon.micro import EndpointStats, MicroService
from venom.daemon.ratelog import ProblemLog
from venom.daemon.tracing import ConsumerTrace, end_span
from venom.plugins.sdk import Plugin
from venom.schemas import (
    HDR_PLUGIN,
    SCHEMA_VERSION,
    Codec,
    ErrorReply,
    Pulse,
    SchemaError,
    Subjects,
    VenomError,
)

log = logging.getLogger("venom.plugins.host")


class PluginRunner:
    """One plugin instance answering pulses on a bus."""

    def __init__(
        self,
        plugin: Plugin[Any],
        bus: Bus,
        *,
        subjects: Subjects | None = None,
        codec: Codec | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.plugin = plugin
        self.bus = bus
        self.subjects = subjects or Subjects()
        self.codec = codec or Codec()
        self.name = plugin.name
        self._pulse_decoder = self.codec.decoder(Pulse)
        self.problems = ProblemLog(log)
        self.endpoint = EndpointStats(
            "pulse", self.subjects.pulse, self.subjects.queue_group(self.name)
        )
        self.service = MicroService(
            f"venom-{self.name}",
            plugin.version,
            description=plugin.description or f"venom {plugin.role} plugin {self.name}",
            metadata={
                "venom.plugin": self.name,
                "venom.role": plugin.role,
                "venom.schema": str(SCHEMA_VERSION),
                "venom.prefix": self.subjects.prefix,
            },
            endpoints=[self.endpoint],
            stats_data=self._stats_data,
        )
        self._subs: list[Subscription] = []
        # Built once: every reply carries only the plugin's name.
        self._reply_headers = {HDR_PLUGIN: self.name}
        self._bus_publish = bus.publish
        self.rejected = 0
        self.late = 0
        self.last_beat = -1
        self.last_ns = 0
        queue = self.subjects.queue_group(self.name)
        self._trace = ConsumerTrace.messaging(
            tracer_provider,
            self.subjects.pulse,
            extra={"venom.plugin": self.name, "messaging.consumer.group.name": queue},
        )
        self._tracing = self._trace.enabled

    def _stats_data(self) -> dict[str, Any]:
        return {
            "role": self.plugin.role,
            "last_beat": self.last_beat,
            "last_ns": self.last_ns,
            "late": self.late,
            "rejected": self.rejected,
        }

    async def start(self) -> None:
        """Subscribe to the pulse (and mesh subjects) and register the service."""
        self._subs.append(
            await self.bus.subscribe(
                self.subjects.pulse, self._on_pulse, queue=self.subjects.queue_group(self.name)
            )
        )
        for suffix in self.plugin.mesh:
            subject = f"{self.subjects.prefix}.mesh.{suffix}"
            self._subs.append(await self.bus.subscribe(subject, self._on_mesh))
        await self.service.start(self.bus)

    async def stop(self) -> None:
        """Stop answering (the bus stays open)."""
        await self.service.stop()
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    async def _on_pulse(self, msg: BusMessage) -> None:
        t0 = time.perf_counter_ns()
        try:
            if len(msg.data) > self.codec.max_bytes:
                raise SchemaError(f"pulse of {len(msg.data)} bytes exceeds {self.codec.max_bytes}")
            pulse = self._pulse_decoder.decode(msg.data)
        except Exception as exc:  # msgspec.DecodeError or SchemaError
            self.rejected += 1
            self.problems.report("malformed pulse", msg.reply, msg.subject, str(exc))
            self.endpoint.record(time.perf_counter_ns() - t0, f"malformed pulse: {exc}")
            if msg.reply:
                hdrs = error_headers(400, f"malformed pulse: {exc}")
                hdrs[HDR_PLUGIN] = self.name
                await self._publish(msg.reply, b"", hdrs)
            return
        self.last_beat = pulse.beat
        span = self._trace.start(msg.headers, pulse.beat) if self._tracing else None
        headers = self._reply_headers
        error = ""
        try:
            reply = await self.plugin.handle(pulse)
            data = self.codec.encode(reply)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.problems.report("handler error", self.name, msg.subject, error)
            data = self.codec.encode(ErrorReply(code=500, description=error))
            headers = {**error_headers(500, error), HDR_PLUGIN: self.name}
        elapsed = self.last_ns = time.perf_counter_ns() - t0
        self.endpoint.record(elapsed, error)
        if pulse.deadline and time.time() > pulse.deadline:
            self.late += 1  # the arbiter will not count it
        if msg.reply:
            try:
                await self._bus_publish(msg.reply, data, headers=headers)
            except VenomError as exc:
                error = error or str(exc)
                self.problems.report("reply not sent", self.name, msg.reply, str(exc))
        if span is not None:
            end_span(span, error)

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        try:
            await self.bus.publish(subject, data, headers=headers)
        except VenomError as exc:
            self.problems.report("reply not sent", self.name, subject, str(exc))

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


class PluginHost:
    """Opens plugins, runs each on the bus, and closes them in reverse order."""

    def __init__(
        self,
        plugins: Sequence[Plugin[Any]],
        bus: Bus,
        *,
        subjects: Subjects | None = None,
        codec: Codec | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.plugins = list(plugins)
        self.bus = bus
        self.runners = [
            PluginRunner(p, bus, subjects=subjects, codec=codec, tracer_provider=tracer_provider)
            for p in plugins
        ]
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Self:
        try:
            for runner in self.runners:
                await self._stack.enter_async_context(runner.plugin)
                await runner.start()
                self._stack.push_async_callback(runner.stop)
            # Started means reachable: the server has every subscription.
            await self.bus.flush()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
