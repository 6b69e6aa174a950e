"""Who leads the beat: one arbiter appends to the beat stream, the others stand by (SPEC 2.6).

Leadership is the right to append to the beat stream, and the stream
enforces it (:mod:`venom.daemon.bus.streamtail`): no consensus of our own.
A standby follows the leader on the bus (the ``Nats-Msg-Id`` of each
record on ``<prefix>.beat``; the heartbeat on ``<prefix>.ha.leader`` of a
leader that is paused or holding beats), and when it has heard nothing for
``takeover_after`` it reads the stream's tail, continues after its last
record (beat number, genome, PID, context) and leads. If another standby
was quicker, its first record is refused by the stream and it stands by
again.

A leader stands down when the stream refused its record because another
epoch wrote after it (:attr:`BeatPublisher.deposed`), and it checks the
tail before its next pulse (or decision) after a stall longer than
``takeover_after`` (SIGSTOP, a long pause of the machine) or a reconnect:
whoever was silent that long may have been replaced.

The leader entry in the ``<PREFIX>_HA`` KV bucket (epoch, host, pid, since
which beat) is for people and tools; it decides nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable

import anyio
import msgspec

from venom.daemon.bus.base import Bus, BusMessage, Subscription, header
from venom.daemon.bus.beatstream import BeatPublisher
from venom.daemon.bus.streamtail import HDR_MSG_ID, StreamTail, epoch_of, ha_bucket, read_tail
from venom.schemas import BusError, Codec, Subjects

log = logging.getLogger("venom.ha")


class Heartbeat(msgspec.Struct, frozen=True):
    """What a leader that is not beating says on ``<prefix>.ha.leader``."""

    epoch: str
    beat: int
    why: str = ""


class LeaderEntry(msgspec.Struct, frozen=True, kw_only=True):
    """The leader entry in the ``<PREFIX>_HA`` bucket (key ``leader``)."""

    epoch: str
    host: str
    pid: int
    since: int
    time: float


class Leadership:
    """This arbiter's role, and the steps that change it."""

    def __init__(
        self,
        bus: Bus,
        subjects: Subjects,
        codec: Codec,
        publisher: BeatPublisher,
        *,
        standby: bool,
        takeover_after: Callable[[], float],
        records: int = 1,
        announce_ttl: float = 3.0,
    ) -> None:
        self.bus = bus
        self.subjects = subjects
        self.codec = codec
        self.publisher = publisher
        self.epoch = publisher.epoch
        self.takeover_after = takeover_after
        self.records = records
        self.announce_ttl = announce_ttl
        self.leading = not standby
        #: The epoch that leads (ours when we do; "" before anyone was heard).
        self.leader = self.epoch if self.leading else ""
        #: The first beat the leader issued as leader.
        self.since = 0
        self._heard = time.monotonic()
        self._looked = time.monotonic()
        self._reconnected = False
        self._subs: list[Subscription] = []
        self._decode_heartbeat = msgspec.json.Decoder(Heartbeat).decode
        self._last_heartbeat = 0.0

    @property
    def role(self) -> str:
        return "leader" if self.leading else "standby"

    async def start(self) -> None:
        """Follow the leader on the bus while standing by."""
        self.bus.on_state(self._on_state)
        if not self.leading:
            await self._follow()

    async def stop(self) -> None:
        await self._unfollow()

    async def _follow(self) -> None:
        """Hear the leader: its records' ids, its heartbeats (a standby only: a leader
        would hear its own records back, at a cost per beat)."""
        if not self._subs:
            self._subs = [
                await self.bus.subscribe(self.subjects.beat, self._on_record),
                await self.bus.subscribe(self.subjects.ha_leader, self._on_heartbeat),
            ]
            # Silence is counted from now: what was said before we listened is not silence.
            self._heard = time.monotonic()

    async def _unfollow(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(BusError):
                await sub.unsubscribe()

    async def _on_state(self, connected: bool) -> None:
        if connected:
            self._reconnected = True

    async def _on_record(self, msg: BusMessage) -> None:
        msg_id = header(msg, HDR_MSG_ID)
        epoch = epoch_of(msg_id)
        if epoch and epoch != self.epoch:
            self._heard = time.monotonic()
            self.leader = epoch

    async def _on_heartbeat(self, msg: BusMessage) -> None:
        try:
            beat = self._decode_heartbeat(msg.data)
        except msgspec.DecodeError:
            return
        if beat.epoch != self.epoch:
            self._heard = time.monotonic()
            self.leader = beat.epoch

    # -- standing by ----------------------------------------------------------

    def silent_for(self) -> float:
        """Seconds since the leader was last heard."""
        return time.monotonic() - self._heard

    def due(self) -> bool:
        """A standby should take over now: the leader has been silent too long.

        Silence counts only while we listened: after a stall of our own (a
        garbage collection, a busy machine) what the leader said meanwhile
        is still queued, so we listen once more before judging.
        """
        now = time.monotonic()
        limit = self.takeover_after()
        looked, self._looked = self._looked, now
        if now - looked > limit:
            return False
        return now - self._heard >= limit

    async def take_over(self, resume: Callable[[StreamTail], None]) -> bool:
        """Lead from the stream's tail (``resume`` continues the arbiter after it)."""
        try:
            tail = await read_tail(
                self.bus.jetstream(), self.subjects, self.codec, records=self.records
            )
        except BusError as exc:
            log.warning("cannot take over: %s", exc)
            self._heard = time.monotonic()  # try again after another silence
            return False
        self.publisher.resume(tail)
        resume(tail)
        await self._unfollow()
        last = tail.last.beat if tail.last is not None else 0
        was = tail.epoch or "nobody"
        self.leading, self.leader, self.since = True, self.epoch, last + 1
        log.warning(
            "leading from beat %d as epoch %s: %s wrote the last record (beat %d) and was "
            "silent for %.0f ms",
            last + 1,
            self.epoch,
            was,
            last,
            self.silent_for() * 1e3,
        )
        return True

    async def stand_down(self, why: str) -> None:
        """Stop leading: forget what the stream refused, follow whoever leads."""
        dropped = self.publisher.abandon()
        self.leading = False
        self._heard = time.monotonic()
        tail = ", ".join(str(b) for b in dropped[:5]) + (" ..." if len(dropped) > 5 else "")
        await self._follow()
        log.warning(
            "standing by (epoch %s): %s%s",
            self.epoch,
            why,
            f"; beats {tail} were not stored and are dropped" if dropped else "",
        )

    # -- leading ---------------------------------------------------------------

    def deposed(self) -> str:
        """Why this leader must stand down now ("" while it leads undisputed)."""
        tail = self.publisher.deposed
        if tail is None:
            return ""
        self.leader = tail.epoch
        beat = tail.last.beat if tail.last is not None else 0
        return f"epoch {tail.epoch} wrote beat {beat} to {self.publisher.stream}"

    def check_due(self, stalled_since: float) -> bool:
        """Whether to read the tail before the next pulse (after a stall or a reconnect)."""
        return self._reconnected or time.monotonic() - stalled_since > self.takeover_after()

    async def still_leading(self) -> bool:
        """Read the stream's end: False (and stood down) when another epoch wrote after us.

        One request when the last record is ours (the common case after a
        stall that replaced nobody); the whole tail only when it is not.
        """
        self._reconnected = False
        js = self.bus.jetstream()
        try:
            last = await js.last_message(self.publisher.stream, self.subjects.beat)
            if last is None or epoch_of(last.headers.get(HDR_MSG_ID, "")) == self.epoch:
                return True
            tail = await read_tail(js, self.subjects, self.codec)
        except BusError as exc:
            log.warning("cannot read the beat stream's end: %s", exc)
            return True  # the stream's order check still fences what we send
        record = tail.last
        if record is not None and tail.epoch != self.epoch and record.beat > self.publisher.stored:
            self.leader = tail.epoch
            await self.stand_down(
                f"after a stall, epoch {tail.epoch} had written up to beat {record.beat}"
            )
            return False
        return True

    async def heartbeat(self, beat: int, why: str) -> None:
        """Say we still lead while not beating (paused, holding), a few times per takeover."""
        now = time.monotonic()
        if now - self._last_heartbeat < self.takeover_after() / 3:
            return
        self._last_heartbeat = now
        with contextlib.suppress(BusError):  # cut off: a standby may take over, as it should
            await self.bus.publish(
                self.subjects.ha_leader, msgspec.json.encode(Heartbeat(self.epoch, beat, why))
            )

    async def announce(self) -> None:
        """Keep the ``<PREFIX>_HA`` leader entry fresh while leading (a background task)."""
        bucket = ha_bucket(self.subjects)
        host, pid = socket.gethostname(), os.getpid()
        while True:
            if self.leading:
                entry = LeaderEntry(
                    epoch=self.epoch, host=host, pid=pid, since=self.since, time=time.time()
                )
                try:
                    await self.bus.jetstream().put_entry(
                        bucket, "leader", msgspec.json.encode(entry), ttl=self.announce_ttl
                    )
                except BusError as exc:
                    log.debug("leader entry not written: %s", exc)
            await anyio.sleep(self.announce_ttl / 3)
