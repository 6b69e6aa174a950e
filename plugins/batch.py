"""Several plugins in one process, one ReplyBatch a beat (SPEC 2.2).

:class:`BatchRunner` subscribes once, in the host's queue group
(``venom.host.<set>``), decodes the pulse once, runs every member's handler
and answers with one :class:`~venom.schemas.ReplyBatch` under a
``Venom-Host`` header. A batch is as late as its slowest member, so before a
member whose last cost would carry it past a deadline still ahead, and
before a handler that waits on the event loop, the replies made so far go
out as a batch of their own. Work the members do after their reply
(:meth:`~venom.plugins.sdk.Plugin.after_reply`) waits until every batch of
the beat has gone out.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine, Generator, Sequence
from typing import Any, Generic, TypeVar

import anyio.lowlevel
from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus, BusMessage, error_headers
from venom.plugins.member import PluginMember
from venom.plugins.runner import PulseRunner
from venom.plugins.sdk import Plugin
from venom.schemas import (
    HDR_HOST,
    Codec,
    ErrorReply,
    Reply,
    ReplyBatch,
    SchemaError,
    Subjects,
    host_set,
)

T = TypeVar("T")


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


class BatchRunner(PulseRunner):
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
        self._after = [m for m in self.members if m.works_after]
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
        if self._after:
            # Let the connection write the batch out before the work after it.
            await anyio.lowlevel.checkpoint()
            for member in self._after:
                await member.after_reply(pulse)

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
