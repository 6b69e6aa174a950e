"""Answering the pulse: what a runner of one plugin and a runner of several share.

:class:`PulseRunner` holds the pulse subscription, decodes the pulse (a
malformed one is counted against every member and answered with NATS micro
error headers), drops what it must not answer (a beat already answered, a
pulse whose deadline passed while it queued) and publishes replies.
:class:`PluginRunner` serves one plugin hosted alone; the batch runner of
several is :class:`~venom.plugins.batch.BatchRunner`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio.lowlevel
from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus, BusMessage, EndpointStats, Subscription, error_headers
from venom.daemon.observe import ProblemLog
from venom.plugins.member import PluginMember
from venom.plugins.sdk import Plugin
from venom.schemas import (
    HDR_PLUGIN,
    Codec,
    ErrorReply,
    Pulse,
    SchemaError,
    Subjects,
    VenomError,
)

log = logging.getLogger("venom.plugins.host")

#: How many recent beat numbers a runner remembers having answered.
REMEMBERED_BEATS = 64


class AnsweredBeats:
    """The last :data:`REMEMBERED_BEATS` beat numbers answered, to answer each once.

    A ring indexed by the beat number: consecutive beats never share a slot,
    so a repeat of any of the last 64 beats is seen, in two list operations.
    """

    __slots__ = ("_ring", "repeats")

    def __init__(self) -> None:
        self._ring = [-1] * REMEMBERED_BEATS
        #: Pulses dropped because their beat was answered already.
        self.repeats = 0

    def first_time(self, beat: int) -> bool:
        """True (and remembered) the first time ``beat`` is seen; False (counted) after."""
        slot = beat % REMEMBERED_BEATS
        if self._ring[slot] == beat:
            self.repeats += 1
            return False
        self._ring[slot] = beat
        return True

    def __len__(self) -> int:
        return sum(1 for b in self._ring if b >= 0)


class PulseRunner:
    """What both runners share: the pulse subscription, decoding, publishing."""

    def __init__(self, bus: Bus, subjects: Subjects, codec: Codec, queue: str, who: str) -> None:
        self.bus = bus
        self.subjects = subjects
        self.codec = codec
        self.queue = queue
        self.who = who
        self.problems = ProblemLog(log)
        self.answered = AnsweredBeats()
        self._pulse_decoder = codec.decoder(Pulse)
        self._decode_pulse = self._pulse_decoder.decode
        self._max_bytes = codec.max_bytes
        self._encode = codec.encode
        self._bus_publish = bus.publish
        self._sub: Subscription | None = None
        self.members: list[PluginMember] = []
        #: Pulses dropped because their deadline had passed before they were handled.
        self.stale = 0

    async def start(self) -> None:
        """Register each member, then subscribe to the pulse once."""
        for member in self.members:
            await member.start(self.bus)
        self._sub = await self.bus.subscribe(self.subjects.pulse, self._on_pulse, queue=self.queue)

    async def stop(self) -> None:
        """Stop answering (the bus stays open)."""
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
        for member in self.members:
            await member.stop()

    async def _on_pulse(self, msg: BusMessage) -> None:
        raise NotImplementedError

    def _decode(self, msg: BusMessage) -> Pulse | str:
        """The pulse, or why it is malformed (counted against every member)."""
        data = msg.data
        try:
            if len(data) > self._max_bytes:
                raise SchemaError(f"pulse of {len(data)} bytes exceeds {self._max_bytes}")
            return self._decode_pulse(data)
        except Exception as exc:  # msgspec.DecodeError or SchemaError
            reason = f"malformed pulse: {exc}"
            self.problems.report("malformed pulse", msg.reply, msg.subject, str(exc))
            for member in self.members:
                member.refused(reason, 0)
            return reason

    def _skip(self, pulse: Pulse, subject: str) -> bool:
        """True for a pulse not to answer: its beat was answered, or its deadline is past."""
        if pulse.deadline and time.time() > pulse.deadline:
            # It waited in the queue (behind a slow handler) past its deadline:
            # the arbiter has closed that beat, so an answer would only be late.
            self.stale += 1
            return True
        if self.answered.first_time(pulse.beat):
            return False
        for member in self.members:
            member.repeats += 1
        self.problems.report(
            "pulse for a beat already answered", self.who, subject, str(pulse.beat)
        )
        return True

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        try:
            await self._bus_publish(subject, data, headers=headers)
        except VenomError as exc:
            self.problems.report("reply not sent", self.who, subject, str(exc))


class PluginRunner(PulseRunner):
    """One plugin hosted alone, answering pulses with its own replies."""

    def __init__(
        self,
        plugin: Plugin[Any],
        bus: Bus,
        *,
        subjects: Subjects | None = None,
        codec: Codec | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        subjects = subjects or Subjects()
        codec = codec or Codec()
        queue = subjects.queue_group(plugin.name)
        super().__init__(bus, subjects, codec, queue, plugin.name)
        self.plugin = plugin
        self.name = plugin.name
        self.member = PluginMember(
            plugin,
            queue_group=queue,
            subjects=subjects,
            codec=codec,
            problems=self.problems,
            tracer_provider=tracer_provider,
        )
        self.members = [self.member]
        # Built once: every good reply carries only the plugin's name.
        self._reply_headers = {HDR_PLUGIN: self.name}

    @property
    def endpoint(self) -> EndpointStats:
        return self.member.endpoint

    @property
    def rejected(self) -> int:
        return self.member.rejected

    async def _on_pulse(self, msg: BusMessage) -> None:
        pulse = self._decode(msg)
        if isinstance(pulse, str):
            if msg.reply:
                hdrs = {**error_headers(400, pulse), HDR_PLUGIN: self.name}
                await self._publish(msg.reply, b"", hdrs)
            return
        if self._skip(pulse, msg.subject):
            return
        reply, error = await self.member.answer(pulse, msg.headers)
        headers = self._reply_headers
        try:
            data = self._encode(reply)
        except SchemaError as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.problems.report("handler error", self.name, msg.subject, error)
            data = self._encode(ErrorReply(code=500, description=error))
        if error:
            headers = {**error_headers(500, error), HDR_PLUGIN: self.name}
        if msg.reply:
            try:
                await self._bus_publish(msg.reply, data, headers=headers)
            except VenomError as exc:
                self.problems.report("reply not sent", self.who, msg.reply, str(exc))
        if self.member.works_after:
            await anyio.lowlevel.checkpoint()  # the reply goes out first
            await self.member.after_reply(pulse)
