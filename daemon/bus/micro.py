"""NATS micro services (ADR-32): ``$SRV.PING``, ``$SRV.INFO``, ``$SRV.STATS``.

The arbiter and every plugin process register one :class:`MicroService`, so
``nats micro ls`` lists them and the arbiter discovers the live plugin set
(SPEC 5.3). Responses follow the published ``io.nats.micro.v1`` schemas:
strings never null, durations in nanoseconds, times in RFC 3339.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from venom.daemon.bus.base import Bus, BusMessage, Subscription
from venom.daemon.observe.percentiles import percentile

log = logging.getLogger("venom.micro")

SRV_PREFIX = "$SRV"
VERBS = ("PING", "INFO", "STATS")


class EndpointStats:
    """Counters of one endpoint; updated by its handler, read by ``$SRV.STATS``."""

    __slots__ = (
        "last_error",
        "metadata",
        "name",
        "num_errors",
        "num_requests",
        "processing_time",
        "queue_group",
        "recent_ns",
        "subject",
    )

    def __init__(
        self, name: str, subject: str, queue_group: str = "", metadata: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.subject = subject
        self.queue_group = queue_group
        self.metadata = metadata or {}
        self.num_requests = 0
        self.num_errors = 0
        self.last_error = ""
        self.processing_time = 0
        self.recent_ns: deque[int] = deque(maxlen=2048)

    def record(self, elapsed_ns: int, error: str = "") -> None:
        """Count one request that took ``elapsed_ns``; ``error`` marks it failed."""
        self.num_requests += 1
        self.processing_time += elapsed_ns
        self.recent_ns.append(elapsed_ns)
        if error:
            self.num_errors += 1
            self.last_error = error

    def percentile_ns(self, q: float) -> int:
        """Handler time percentile ``q`` (0-100) over the recent requests."""
        return percentile(self.recent_ns, q, 0)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "subject": self.subject,
            "metadata": dict(self.metadata),
        }
        if self.queue_group:
            out["queue_group"] = self.queue_group
        return out

    def stats(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        out = self.info()
        out.pop("metadata")
        avg = self.processing_time // self.num_requests if self.num_requests else 0
        out.update(
            num_requests=self.num_requests,
            num_errors=self.num_errors,
            last_error=self.last_error,
            processing_time=self.processing_time,
            average_processing_time=avg,
            data={
                "p50_ns": self.percentile_ns(50),
                "p99_ns": self.percentile_ns(99),
                **(extra or {}),
            },
        )
        return out


def rfc3339(ts: datetime) -> str:
    """``2026-11-24T15:04:05.123456Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class MicroService:
    """One ADR-32 service instance answering PING/INFO/STATS on a :class:`Bus`."""

    def __init__(
        self,
        name: str,
        version: str,
        *,
        description: str = "",
        metadata: dict[str, str] | None = None,
        endpoints: list[EndpointStats] | None = None,
        stats_data: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.id = secrets.token_hex(11)
        self.version = version
        self.description = description
        self.metadata = dict(metadata or {})
        self.endpoints = list(endpoints or [])
        self.started = datetime.now(UTC)
        self._stats_data = stats_data
        self._subs: list[Subscription] = []
        self._bus: Bus | None = None
        self._encoder = msgspec.json.Encoder()

    def _identity(self, kind: str) -> dict[str, Any]:
        return {
            "type": f"io.nats.micro.v1.{kind}_response",
            "name": self.name,
            "id": self.id,
            "version": self.version,
            "metadata": dict(self.metadata),
        }

    def ping(self) -> dict[str, Any]:
        """The ``$SRV.PING`` response."""
        return self._identity("ping")

    def info(self) -> dict[str, Any]:
        """The ``$SRV.INFO`` response."""
        out = self._identity("info")
        out["description"] = self.description
        out["endpoints"] = [ep.info() for ep in self.endpoints]
        return out

    def stats(self) -> dict[str, Any]:
        """The ``$SRV.STATS`` response."""
        out = self._identity("stats")
        out["started"] = rfc3339(self.started)
        extra = self._stats_data() if self._stats_data else None
        out["endpoints"] = [ep.stats(extra) for ep in self.endpoints]
        return out

    async def start(self, bus: Bus) -> None:
        """Subscribe to ``$SRV.<VERB>``, ``.<name>`` and ``.<name>.<id>``."""
        self._bus = bus
        for verb in VERBS:
            build = {"PING": self.ping, "INFO": self.info, "STATS": self.stats}[verb]
            handler = self._responder(build)
            for subject in (
                f"{SRV_PREFIX}.{verb}",
                f"{SRV_PREFIX}.{verb}.{self.name}",
                f"{SRV_PREFIX}.{verb}.{self.name}.{self.id}",
            ):
                self._subs.append(await bus.subscribe(subject, handler))

    def _responder(self, build: Callable[[], dict[str, Any]]) -> Callable[[BusMessage], Any]:
        async def respond(msg: BusMessage) -> None:
            if self._bus is not None and msg.reply:
                await self._bus.publish(msg.reply, self._encoder.encode(build()))

        return respond

    async def stop(self) -> None:
        """Stop answering."""
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()
