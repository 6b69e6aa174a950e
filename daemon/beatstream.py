"""The JetStream stream of beat records (SPEC 5.1, 6): ``VENOM_BEATS`` on ``<prefix>.beat``.

The arbiter publishes every BeatRecord with ``Nats-Msg-Id`` set to the
beat's id (``<run id>.<beat>``), so a retried publish is stored once; the
ledger consumes the stream with a durable consumer and explicit acks.
Publishing does not wait for the stream's ack inside the beat: failures are
counted and logged, and the next issue (service lifecycle) pauses the beat
when the stream cannot be reached.
"""

from __future__ import annotations

import functools
import logging
import secrets
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import Error as JsError

from venom.daemon.natsbus import NatsBus
from venom.daemon.tracing import BeatTrace
from venom.schemas import HDR_TRACEPARENT, BeatRecord, BusError, Codec, Subjects

log = logging.getLogger("venom.beatstream")

STREAM = "VENOM_BEATS"


def stream_name(subjects: Subjects) -> str:
    """``VENOM_BEATS`` for the default prefix; ``<PREFIX>_BEATS`` otherwise (one per prefix)."""
    token = "".join(c if c.isalnum() else "_" for c in subjects.prefix).upper()
    return f"{token}_BEATS"


HDR_MSG_ID = "Nats-Msg-Id"


async def ensure_stream(js: JetStreamContext, subjects: Subjects, *, replicas: int = 1) -> str:
    """Create the beat stream if missing (file storage, ``replicas`` copies); its name."""
    name = stream_name(subjects)
    config = StreamConfig(
        name=name,
        subjects=[subjects.beat],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=120.0,
    )
    try:
        await js.stream_info(name)
    except JsError:
        try:
            await js.add_stream(config)
            log.info("created JetStream stream %s on %s", name, subjects.beat)
        except JsError as exc:
            raise BusError(f"cannot create JetStream stream {name}: {exc}") from exc
    return name


class BeatPublisher:
    """Publishes beat records into the stream without blocking the beat."""

    def __init__(self, bus: NatsBus, subjects: Subjects, codec: Codec) -> None:
        self.js = bus.nc.jetstream()
        self.subjects = subjects
        self.codec = codec
        self.run_id = secrets.token_hex(6)
        self.stream = stream_name(subjects)
        self.published = 0
        self.failed = 0
        #: The arbiter's beat trace: each record carries its beat's root span in
        #: ``traceparent``, so the ledger's append joins the beat's trace.
        self.trace: BeatTrace | None = None

    async def start(self) -> None:
        self.stream = await ensure_stream(self.js, self.subjects)

    async def __call__(self, record: BeatRecord) -> None:
        headers = {HDR_MSG_ID: f"{self.run_id}.{record.beat}"}
        if self.trace is not None and self.trace.trace_id == record.trace_id:
            headers[HDR_TRACEPARENT] = self.trace.root_traceparent
        try:
            future = await self.js.publish_async(
                self.subjects.beat, self.codec.encode(record), headers=headers
            )
        except Exception as exc:
            self._failed(record.beat, exc)
            return
        future.add_done_callback(functools.partial(self._acked, beat=record.beat))

    def _acked(self, future: Any, *, beat: int) -> None:
        if future.cancelled():
            self._failed(beat, RuntimeError("cancelled"))
        elif future.exception() is not None:
            self._failed(beat, future.exception())
        else:
            self.published += 1

    def _failed(self, beat: int, exc: BaseException) -> None:
        self.failed += 1
        if self.failed == 1 or self.failed % 1000 == 0:
            log.warning(
                "beat %d not stored in %s (%d so far): %s", beat, self.stream, self.failed, exc
            )

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait for the acks of everything published."""
        try:
            await self.js.publish_async_completed()
        except Exception as exc:
            log.warning("waiting for beat stream acks failed: %s", exc)
