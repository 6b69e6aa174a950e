"""The loop over beats: when to beat, pause, hold, stand by or take over (SPEC 2.2, 2.6).

:class:`BeatLoop` is the part of the :class:`~venom.daemon.beat.arbiter.Arbiter`
that turns: each turn it either runs a beat (the arbiter's
:meth:`run_beat`), or waits, paused by a control request, holding beats
while NATS or the beat stream cannot take them, or, with HA, standing by
while another arbiter leads (:class:`~venom.daemon.beat.leadership.Leadership`).
A paused or holding leader tells the standbys it still leads; a leader that
stalled longer than a takeover reads the stream's tail before it sends
anything more.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Sequence

import anyio

from venom.daemon.beat.discovery import Discovery
from venom.daemon.beat.leadership import Leadership
from venom.daemon.beat.scheduler import Scheduler, Tick
from venom.daemon.bus.base import Bus
from venom.daemon.bus.micro import MicroService
from venom.daemon.bus.streamtail import StreamTail
from venom.schemas import BeatRecord

log = logging.getLogger("venom.arbiter")


class BeatLoop:
    """The turning part of the arbiter (its state is the arbiter's)."""

    bus: Bus
    discovery: Discovery
    scheduler: Scheduler
    service: MicroService
    leadership: Leadership | None
    hold: Callable[[], str] | None
    on_turn: Callable[[], None]
    holding: str
    beat: int
    paused: bool
    _stopping: bool
    _wake: anyio.Event

    def deadline(self) -> float:
        raise NotImplementedError

    async def run_beat(self, tick: Tick) -> BeatRecord:
        raise NotImplementedError

    def continue_after(self, records: Sequence[BeatRecord]) -> None:
        raise NotImplementedError

    async def _idle(self, seconds: float) -> None:
        """Wait for a resume or a stop, ``seconds`` at most (the loop keeps turning)."""
        self._wake = anyio.Event()
        with anyio.move_on_after(seconds):
            await self._wake.wait()

    def _hold_reason(self) -> str:
        """Why no beat may be issued now ("" when one may)."""
        if not self.bus.connected:
            return "NATS connection lost"
        return self.hold() if self.hold is not None else ""

    def _change_hold(self, reason: str) -> None:
        if reason:
            log.warning("holding beats after beat %d: %s", self.beat, reason)
        else:
            log.info("resuming beats at beat %d (held: %s)", self.beat + 1, self.holding)
            # Plugins were not heard while we were cut off: give them time to come back.
            self.discovery.touch()
        self.holding = reason

    def stop(self) -> None:
        """Finish the current beat, then return from :meth:`run`."""
        self._stopping = True
        self._wake.set()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._wake.set()

    def is_paused(self) -> bool:
        """Whether beats are paused (a method: a control request changes it while we wait)."""
        return self.paused

    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (a method: it changes under our feet)."""
        return self._stopping

    async def _beat_loop(self, max_beats: int) -> None:
        # Start-up garbage (imports, config, connections) is permanent: keep the
        # collector from walking it in the middle of a beat.
        gc.collect()
        gc.freeze()
        self.scheduler.restart()
        on_turn = self.on_turn
        lead = self.leadership
        issued = 0
        last_beat = time.monotonic()
        while not self.stopping() and not (max_beats and issued >= max_beats):
            on_turn()
            if lead is not None and not await self._lead(lead):
                continue
            if self.paused:
                await self._not_beating(lead, "paused", 1.0)
                if not self.is_paused():  # resumed while we waited
                    self.scheduler.restart()
                continue
            holding = self._hold_reason()
            if holding != self.holding:
                self._change_hold(holding)
                if not holding:
                    self.scheduler.restart()
            if holding:
                await self._not_beating(lead, holding, 0.05)
                continue
            # A tick that comes with less than half the gather time left is missed.
            tick = await self.scheduler.wait(max_lateness=0.5 * self.deadline())
            if self.stopping():
                break
            # Stalled (or reconnected) longer than a takeover: still ours? Before the pulse.
            if lead is not None and lead.check_due(last_beat) and not await lead.still_leading():
                self._show_role()
                continue
            await self.run_beat(tick)
            issued += 1
            last_beat = time.monotonic()

    async def _lead(self, lead: Leadership) -> bool:
        """HA: True while this arbiter leads; a standby waits here, and takes over when due."""
        if lead.leading:
            why = lead.deposed()
            if not why:
                return True
            await lead.stand_down(why)
            self._show_role()
        if not lead.due():
            await self._idle(min(0.25, lead.takeover_after() / 4))
            return False
        if await lead.take_over(self._take_over):
            self._show_role()
            self.scheduler.restart()
        return False  # the next turn beats

    def _take_over(self, tail: StreamTail) -> None:
        self.continue_after(tail.records)

    async def _not_beating(self, lead: Leadership | None, why: str, seconds: float) -> None:
        """Paused or holding: wait, and (HA) tell the standbys we still lead."""
        if lead is not None:
            if self.bus.connected:
                await lead.heartbeat(self.beat, why)
            seconds = min(seconds, lead.takeover_after() / 3)
        await self._idle(seconds)

    def _show_role(self) -> None:
        """The role in the micro metadata (``nats micro info venom-arbiter``)."""
        lead = self.leadership
        if lead is not None:
            meta = self.service.metadata
            meta["venom.ha.role"] = lead.role
            meta["venom.ha.epoch"] = lead.epoch
            meta["venom.ha.leader"] = lead.leader
            meta["venom.ha.since"] = str(lead.since)

    async def _lead_after_stall(self) -> bool:
        """The beat took longer than a takeover: are we still the leader? (HA)"""
        lead = self.leadership
        if lead is None or await lead.still_leading():
            return True
        self._show_role()
        return False
