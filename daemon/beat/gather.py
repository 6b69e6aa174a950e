"""Scatter-gather with a deadline (SPEC 2.2).

One wildcard subscription on ``<inbox>.*`` receives every reply for every
beat (the beat number is the last token of the reply subject), so there is
no per-beat subscription or task. :meth:`Gather.open` starts a beat with the
set of plugins to wait for; :meth:`Gather.wait` returns when all of them are
in or the deadline passes; :meth:`Gather.close` turns what arrived into a
:class:`GatherReport` and updates each plugin's breaker: after
``breaker_after`` misses in a row a plugin is *down* and not waited for, and
it is waited for again as soon as it replies.

A host that runs several plugins answers with one ``ReplyBatch`` (header
``Venom-Host``); each member is counted exactly as a reply of its own would
be, and a malformed member is rejected alone. A plugin heard twice in one
beat counts once: the duplicate is counted and dropped.

Replies for an older beat are *late*: counted per plugin and dropped.
Malformed replies are *rejected*: counted per plugin, logged once with their
subject, never fatal. Error replies are *failed*.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Literal

import msgspec

from venom.daemon.beat.breakerlog import BreakerLog
from venom.daemon.bus.base import Bus, BusMessage, Subscription, header, is_no_responders
from venom.daemon.observe.problems import ProblemLog
from venom.schemas import (
    HDR_HOST,
    HDR_PLUGIN,
    HDR_SERVICE_ERROR,
    Codec,
    ErrorReply,
    GatherReport,
    Reply,
    ReplyBatch,
    SchemaError,
)

log = logging.getLogger("venom.gather")


class PluginHealth:
    """What the arbiter knows about one plugin's answers."""

    __slots__ = (
        "down",
        "duplicates",
        "failed",
        "last_latency",
        "late",
        "missed",
        "misses",
        "name",
        "rejected",
        "replies",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.misses = 0  # in a row
        self.down = False
        self.last_latency: float | None = None
        self.replies = 0
        self.missed = 0
        self.late = 0
        self.failed = 0
        self.rejected = 0
        self.duplicates = 0


class _LooseBatch(msgspec.Struct):
    """A ReplyBatch whose members are decoded one by one (when one is malformed)."""

    replies: dict[str, msgspec.Raw] = {}


def _release(waiter: asyncio.Future[None] | None) -> None:
    """Wake :meth:`Gather.wait` (once: the last reply and the deadline may both come)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Gather:
    """Collects plugin replies per beat on one reply subscription."""

    def __init__(
        self,
        bus: Bus,
        codec: Codec,
        *,
        breaker_after: int = 5,
    ) -> None:
        self.bus = bus
        self.codec = codec
        self.breaker_after = breaker_after
        self.health: dict[str, PluginHealth] = {}
        self.problems = ProblemLog(log)
        #: Breaker changes, said in one line per interval (never one per flap).
        self.breaker = BreakerLog(log, breaker_after=breaker_after)
        self.prefix = ""
        self._prefix_len = 1
        self._beat_token = ""
        self._decode = codec.reply_decoder.decode
        self._decode_batch = codec.decoder(ReplyBatch).decode
        self._decode_loose = msgspec.json.Decoder(_LooseBatch).decode
        self._max_bytes = codec.max_bytes
        self._sub: Subscription | None = None
        self._clock = time.perf_counter
        # State of the open beat.
        self.beat = -1
        self._open = False
        self._expected: frozenset[str] = frozenset()
        self._waiting = 0
        self._started = 0.0
        self._replies: dict[str, Reply] = {}
        self._latency: dict[str, float] = {}
        self._late: dict[str, int] = {}
        self._failed: dict[str, str] = {}
        self._rejected: dict[str, str] = {}
        #: Every expected reply of the open beat is in.
        self._all_in = False
        #: What :meth:`wait` sleeps on: resolved by the last expected reply or the deadline.
        self._waiter: asyncio.Future[None] | None = None
        self._live_seen: frozenset[str] | None = None
        self._expected_cache: frozenset[str] = frozenset()
        self._down_changed = False
        #: Plugins heard from (any reply, late ones too) since the arbiter last looked.
        self.heard: set[str] = set()

    async def start(self) -> None:
        """Subscribe to this arbiter's reply subjects."""
        self.prefix = self.bus.new_inbox()
        self._prefix_len = len(self.prefix) + 1
        self._sub = await self.bus.subscribe(f"{self.prefix}.*", self._on_reply)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def reply_subject(self, beat: int) -> str:
        """The reply subject of ``beat``."""
        return f"{self.prefix}.{beat}"

    def health_of(self, name: str) -> PluginHealth:
        h = self.health.get(name)
        if h is None:
            h = self.health[name] = PluginHealth(name)
        return h

    def waiting_for(self, live: frozenset[str]) -> frozenset[str]:
        """The live plugins that are not down: whose replies a beat waits for."""
        if live is not self._live_seen or self._down_changed:
            health = self.health
            self._expected_cache = frozenset(
                n for n in live if not (n in health and health[n].down)
            )
            self._live_seen = live
            self._down_changed = False
        return self._expected_cache

    def open(self, beat: int, expected: frozenset[str]) -> None:
        """Start gathering ``beat``, waiting for the plugins in ``expected``."""
        self.beat = beat
        self._beat_token = str(beat)
        self._open = True
        self._expected = expected
        self._waiting = len(expected)
        self._started = self._clock()
        self._replies = {}
        self._latency = {}
        self._failed = {}
        self._rejected = {}
        self._all_in = not expected

    async def wait(self, timeout: float) -> bool:
        """Wait until every expected reply is in (True) or ``timeout`` passes (False).

        One future and one timer per beat (a cancel scope and an event cost
        several times that on the beat's path); cancelling the waiting task
        cancels the wait.
        """
        if self._all_in:
            return True
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(max(0.0, timeout), _release, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self._all_in

    def close(self) -> tuple[GatherReport, dict[str, Reply]]:
        """Stop gathering the open beat; return its report and its replies."""
        self._open = False
        elapsed = self._clock() - self._started
        # Late replies that arrive between beats are reported with the next one.
        late, self._late = self._late, {}
        answered = self._replies.keys() | self._failed.keys() | self._rejected.keys()
        missing = sorted(self._expected - answered)
        for name in missing:
            h = self.health_of(name)
            h.misses += 1
            h.missed += 1
            if h.misses >= self.breaker_after and not h.down:
                h.down = True
                self._down_changed = True
                self.breaker.down(name)
        down = sorted(n for n, h in self.health.items() if h.down)
        closed_by: Literal["all", "deadline", "none"]
        if not self._expected:
            closed_by = "none"
        elif self._all_in:
            closed_by = "all"
        else:
            closed_by = "deadline"
        report = GatherReport(
            beat=self.beat,
            expected=sorted(self._expected),
            replied=self._latency,
            late=late,
            failed=self._failed,
            rejected=self._rejected,
            missing=missing,
            down=down,
            closed_by=closed_by,
            gather_s=elapsed,
        )
        return report, self._replies

    def _answered(self, name: str, h: PluginHealth) -> None:
        h.misses = 0
        if h.down:
            h.down = False
            self._down_changed = True
            self.breaker.back(name)
        if name in self._expected:
            self._waiting -= 1
            if self._waiting <= 0 and not self._all_in:
                self._all_in = True
                _release(self._waiter)

    async def _on_reply(self, msg: BusMessage) -> None:
        headers = msg.headers
        data = msg.data
        if not data and is_no_responders(msg):
            return  # nobody subscribes to the pulse (yet): nothing to gather
        subject = msg.subject
        name = (headers.get(HDR_PLUGIN) or header(msg, HDR_PLUGIN)) if headers else ""
        if not name:
            host = (headers.get(HDR_HOST) or header(msg, HDR_HOST)) if headers else ""
            if host:
                self._on_batch(host, data, subject)
            else:
                self.problems.report("reply without Venom-Plugin header", "", subject, "dropped")
            return
        self.heard.add(name)
        if not (self._open and subject[self._prefix_len :] == self._beat_token):
            self._on_other_beat(name, subject)
            return
        error = header(msg, HDR_SERVICE_ERROR) if len(headers) > 1 else ""  # type: ignore[arg-type]
        reply: Reply | None = None
        problem = ""
        if data:
            try:
                if len(data) > self._max_bytes:
                    raise SchemaError(
                        f"reply: payload of {len(data)} bytes exceeds the limit of "
                        f"{self._max_bytes} bytes"
                    )
                reply = self._decode(data)
            except (SchemaError, msgspec.DecodeError) as exc:
                problem = str(exc) if isinstance(exc, SchemaError) else f"reply: {exc}"
        if error:
            self._count(name, None, error, "", subject)
        else:
            self._count(name, reply, "", problem, subject)

    def _on_batch(self, host: str, data: bytes, subject: str) -> None:
        """A host's ReplyBatch: each member counted as if it had answered alone."""
        members = self._batch_members(host, data, subject)
        if not members:
            return
        heard = self.heard
        if not (self._open and subject[self._prefix_len :] == self._beat_token):
            for name in members:
                heard.add(name)
                self._on_other_beat(name, subject)
            return
        for name, reply in members.items():
            heard.add(name)
            if isinstance(reply, str):
                self._count(name, None, "", reply, subject)
            else:
                self._count(name, reply, "", "", subject)

    def _batch_members(self, host: str, data: bytes, subject: str) -> Mapping[str, Reply | str]:
        """Name → reply of a batch's members, or → why that member was rejected.

        One decode when the batch is sound; when it is not, each member is
        decoded alone so that only the malformed ones are rejected.
        """
        try:
            if len(data) > self._max_bytes:
                raise SchemaError(
                    f"batch: payload of {len(data)} bytes exceeds the limit of "
                    f"{self._max_bytes} bytes"
                )
            return self._decode_batch(data).replies
        except msgspec.DecodeError:
            pass
        except SchemaError as exc:
            self.problems.report("rejected batch", f"host {host}", subject, str(exc))
            return {}
        try:
            loose = self._decode_loose(data)
        except msgspec.DecodeError as exc:
            self.problems.report("rejected batch", f"host {host}", subject, f"batch: {exc}")
            return {}
        members: dict[str, Reply | str] = {}
        for name, raw in loose.replies.items():
            try:
                members[name] = self._decode(raw)
            except msgspec.DecodeError as exc:
                members[name] = f"reply: {exc}"
        return members

    def _count(
        self, name: str, reply: Reply | None, error: str, problem: str, subject: str
    ) -> None:
        """Count one plugin's answer to the open beat: replied, failed or rejected."""
        if name in self._replies or name in self._failed or name in self._rejected:
            self.problems.report("duplicate reply", name, subject, f"beat {self.beat}")
            self.health_of(name).duplicates += 1
            return
        latency = self._clock() - self._started
        h = self.health.get(name) or self.health_of(name)
        h.last_latency = latency
        if problem and not error:
            self._rejected[name] = problem
            h.rejected += 1
            self.problems.report("rejected reply", name, subject, problem)
        elif error or reply is None or type(reply) is ErrorReply:
            if error:
                text = error
            elif isinstance(reply, ErrorReply):
                text = reply.description
            else:
                text = "empty reply"
            self._failed[name] = text
            h.failed += 1
        else:
            self._replies[name] = reply
            self._latency[name] = latency
            h.replies += 1
        self._answered(name, h)

    def _on_other_beat(self, name: str, subject: str) -> None:
        """A reply for a beat that is not open: late (or a bad subject)."""
        try:
            int(subject[self._prefix_len :])
        except ValueError:
            self.problems.report("bad reply subject", name, subject, "not a beat number")
            return
        self._late[name] = self._late.get(name, 0) + 1
        h = self.health_of(name)
        h.late += 1
        if h.down:
            # A down plugin is not waited for, so its replies come late: any
            # reply shows it is back, and the next beat waits for it again.
            h.down = False
            self._down_changed = True
            h.misses = 0
            self.breaker.back(name)
