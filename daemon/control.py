"""Control requests on ``<prefix>.ctl.*`` (``nats req venom.ctl.status ''``).

- ``status``: the arbiter's :class:`Status` as JSON.
- ``pause`` / ``resume``: stop and restart issuing pulses.
- ``weights``: body ``{"R": .., "B": .., "E": .., "O": ..}`` sets the genome
  (floored and normalised); the answer carries the weights in force.

Bad requests get an error reply with NATS micro error headers
(``Nats-Service-Error``, ``Nats-Service-Error-Code``) and a JSON body
``{"error": ...}``; they are counted and logged once, never fatal.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import msgspec

from venom.daemon.bus import BusMessage, Subscription, error_headers
from venom.daemon.ratelog import ProblemLog
from venom.schemas import ControlAck, PluginStatus, Status, Weights

if TYPE_CHECKING:
    from venom.daemon.arbiter import Arbiter

log = logging.getLogger("venom.control")


class Control:
    """Answers control requests for one arbiter."""

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        self.problems = ProblemLog(log)
        self._sub: Subscription | None = None
        self._weights_decoder = msgspec.json.Decoder(Weights)
        self._started = time.monotonic()

    async def start(self) -> None:
        self._sub = await self.arbiter.bus.subscribe(
            self.arbiter.subjects.ctl_wildcard, self._on_request
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    def status(self) -> Status:
        """What ``venom status`` prints."""
        a = self.arbiter
        plugins = []
        live = a.discovery.plugins
        for name in sorted(live.keys() | a.gather.health.keys()):
            entry = live.get(name)
            h = a.gather.health.get(name)
            plugins.append(
                PluginStatus(
                    name=name,
                    role=entry.role if entry else "",
                    version=entry.version if entry else "",
                    instances=len(entry.instances) if entry else 0,
                    last_latency_ms=(
                        round(h.last_latency * 1e3, 4) if h and h.last_latency is not None else None
                    ),
                    down=bool(h and h.down),
                    misses=h.missed if h else 0,
                    errors=h.failed if h else 0,
                    rejected=h.rejected if h else 0,
                    late=h.late if h else 0,
                )
            )
        if a.config.beat.period is None:
            mode = "t_lambda"
        elif a.config.beat.period == 0:
            mode = "back-to-back"
        else:
            mode = "fixed"
        return Status(
            beat=a.beat,
            rate=round(a.stats.rate(), 3),
            t_lambda=a.period,
            period_mode=mode,
            paused=a.paused,
            weights=a.genome.weights,
            pid_error=a.last_pid.error,
            pid_stable=a.last_pid.stable,
            missed_ticks=a.scheduler.missed,
            k=a.k,
            p=a.p,
            plugins=plugins,
            decisions=dict(a.stats.decisions),
            last_decision=a.last_decision,
            uptime_s=round(time.monotonic() - self._started, 3),
            connected=a.bus.connected,
        )

    async def _on_request(self, msg: BusMessage) -> None:
        t0 = time.perf_counter_ns()
        verb = msg.subject.rsplit(".", 1)[-1]
        a = self.arbiter
        error = ""
        try:
            if verb == "status":
                body = a.codec.encode(self.status())
            elif verb == "pause":
                a.pause()
                log.info("paused by control request")
                body = a.codec.encode(ControlAck(paused=True, weights=a.genome.weights))
            elif verb == "resume":
                a.resume()
                log.info("resumed by control request")
                body = a.codec.encode(ControlAck(paused=False, weights=a.genome.weights))
            elif verb == "weights":
                try:
                    weights = self._weights_decoder.decode(msg.data)
                except msgspec.DecodeError as exc:
                    raise ValueError(f"weights: {exc}") from exc
                a.genome.set(weights)
                log.info("weights set by control request: %s", a.genome.weights)
                body = a.codec.encode(ControlAck(paused=a.paused, weights=a.genome.weights))
            else:
                await self._error(
                    msg,
                    404,
                    f"unknown control request {verb!r}; use status, pause, resume or weights",
                )
                error = "unknown"
                return
        except ValueError as exc:
            await self._error(msg, 400, str(exc))
            error = str(exc)
            return
        finally:
            a.endpoint.record(time.perf_counter_ns() - t0, error)
        if msg.reply:
            await a.bus.publish(msg.reply, body)

    async def _error(self, msg: BusMessage, code: int, text: str) -> None:
        self.problems.report("bad control request", "", msg.subject, text)
        if msg.reply:
            body = msgspec.json.encode({"error": text, "code": code})
            await self.arbiter.bus.publish(msg.reply, body, headers=error_headers(code, text))
