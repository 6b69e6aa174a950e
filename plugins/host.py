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

import logging
import time
from collections.abc import Coroutine, Generator, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio
import anyio.lowlevel
from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus, BusMessage, Subscription, error_headers
from venom.daemon.micro import EndpointStats
from venom.daemon.ratelog import ProblemLog
from venom.plugins.member import PluginMember
from venom.plugins.sdk import Plugin
from venom.schemas import (
    HDR_HOST,
    HDR_PLUGIN,
    Codec,
    ErrorReply,
    Pulse,
    Reply,
    ReplyBatch,
    SchemaError,
    Subjects,
    VenomError,
    host_set,
)

log = logging.getLogger("venom.plugins.host")

T = TypeVar("T")

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


class _Resume(Generic[T]):
    """Awaitable that finishes a coroutine already stepped once by hand.

    :meth:`BatchRunner._on_pulse` steps each handler once itself, so a
    handler that returns without waiting (every built-in one) costs no task
    and no trip through the event loop; one that does wait is finished here,
    in the same task, exactly as ``await`` would have: each value it yields
    goes to the event loop and each result or exception comes back to it.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, T], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, T]:
        coro, yielded = self._coro, self._first
        try:
            while True:
                try:
                    sent = yield yielded
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:
                    yielded = coro.throw(exc)
                else:
                    yielded = coro.send(sent)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


class _Runner:
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
        t0 = time.perf_counter_ns()
        try:
            if len(msg.data) > self.codec.max_bytes:
                raise SchemaError(f"pulse of {len(msg.data)} bytes exceeds {self.codec.max_bytes}")
            return self._pulse_decoder.decode(msg.data)
        except Exception as exc:  # msgspec.DecodeError or SchemaError
            reason = f"malformed pulse: {exc}"
            self.problems.report("malformed pulse", msg.reply, msg.subject, str(exc))
            elapsed = time.perf_counter_ns() - t0
            for member in self.members:
                member.refused(reason, elapsed)
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
        self.problems.report(
            "pulse for a beat already answered", self.who, subject, str(pulse.beat)
        )
        return True

    async def _publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        try:
            await self._bus_publish(subject, data, headers=headers)
        except VenomError as exc:
            self.problems.report("reply not sent", self.who, subject, str(exc))


class PluginRunner(_Runner):
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
        try:
            if len(msg.data) > self._max_bytes:
                raise SchemaError(f"pulse of {len(msg.data)} bytes exceeds {self._max_bytes}")
            pulse = self._decode_pulse(msg.data)
        except Exception:  # msgspec.DecodeError or SchemaError: said by _decode
            reason = self._decode(msg)
            if msg.reply and isinstance(reason, str):
                hdrs = {**error_headers(400, reason), HDR_PLUGIN: self.name}
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


class BatchRunner(_Runner):
    """Several plugins in one process, answering each pulse with ReplyBatches."""

    def __init__(
        self,
        plugins: Sequence[Plugin[Any]],
        bus: Bus,
        *,
        subjects: Subjects | None = None,
        codec: Codec | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        subjects = subjects or Subjects()
        codec = codec or Codec()
        self.host = host_set(p.name for p in plugins)
        queue = subjects.host_queue_group(self.host)
        super().__init__(bus, subjects, codec, queue, f"host {self.host}")
        self.members = [
            PluginMember(
                p,
                queue_group=queue,
                subjects=subjects,
                codec=codec,
                problems=self.problems,
                tracer_provider=tracer_provider,
            )
            for p in plugins
        ]
        self._headers = {HDR_HOST: self.host}
        #: Batches sent, and how many of them went out early (before a slow member).
        self.batches = 0
        self.split = 0
        #: Handler calls that waited on something (and so went out in a batch of their own).
        self.suspended = 0

    async def _on_pulse(self, msg: BusMessage) -> None:
        pulse = self._decode(msg)
        if isinstance(pulse, str):
            if msg.reply:
                failed: dict[str, Reply] = {
                    m.name: ErrorReply(code=400, description=pulse) for m in self.members
                }
                data = self.codec.encode(ReplyBatch(host=self.host, beat=-1, replies=failed))
                await self._publish(msg.reply, data, {**error_headers(400, pulse), **self._headers})
            return
        if self._skip(pulse, msg.subject):
            return
        deadline = pulse.deadline
        reply_to = msg.reply
        replies: dict[str, Reply] = {}
        for member in self.members:
            if replies and deadline and self._would_be_late(member, deadline):
                # This member would make the whole batch late: send what is
                # ready, and let the connection write it out before the member runs.
                self.split += 1
                await self._send(reply_to, pulse.beat, replies)
                replies = {}
                await anyio.lowlevel.checkpoint()
            coro = member.answer(pulse, msg.headers)
            try:
                suspended = coro.send(None)
            except StopIteration as done:
                replies[member.name] = done.value[0]
                continue
            # The handler waits on something: what is ready goes out first,
            # then the handler finishes in this task (as a plain await would).
            self.suspended += 1
            if replies:
                await self._send(reply_to, pulse.beat, replies)
                replies = {}
            reply, _ = await _Resume(coro, suspended)
            replies[member.name] = reply
        if replies:
            await self._send(reply_to, pulse.beat, replies)

    @staticmethod
    def _would_be_late(member: PluginMember, deadline: float) -> bool:
        """Would ``member`` (at its last cost) end past a deadline that is still ahead?"""
        now = time.time()
        return now < deadline < now + member.last_ns * 1e-9

    async def _send(self, subject: str, beat: int, replies: dict[str, Reply]) -> None:
        self.batches += 1
        if not subject:
            return
        try:
            data = self.codec.encode(ReplyBatch(host=self.host, beat=beat, replies=replies))
        except SchemaError:
            data = self.codec.encode(
                ReplyBatch(host=self.host, beat=beat, replies=self._encodable(replies))
            )
        await self._publish(subject, data, self._headers)

    def _encodable(self, replies: dict[str, Reply]) -> dict[str, Reply]:
        """``replies`` with each member that cannot be encoded (NaN, say) made an ErrorReply."""
        out: dict[str, Reply] = {}
        for member in self.members:
            reply = replies.get(member.name)
            if reply is None:
                continue
            try:
                self.codec.encode(reply)
            except SchemaError as exc:
                error = f"{type(exc).__name__}: {exc}"
                self.problems.report("handler error", member.name, self.subjects.pulse, error)
                member.endpoint.num_errors += 1
                member.endpoint.last_error = error
                reply = ErrorReply(code=500, description=error)
            out[member.name] = reply
        return out


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
