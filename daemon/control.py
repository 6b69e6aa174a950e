"""Control requests on ``<prefix>.ctl.*`` (``nats req venom.ctl.status ''``).

- ``status``: the arbiter's :class:`Status` as JSON.
- ``pause`` / ``resume``: stop and restart issuing pulses.
- ``weights``: body ``{"R": .., "B": .., "E": .., "O": ..}`` sets the genome
  (floored and normalised); the answer carries the weights in force.

``status``, ``pause`` and ``resume`` take no arguments: the body is empty
(whitespace counts as empty) or ``{}``. ``weights`` needs all four keys and
nothing else, each a finite number >= 0, with a finite sum > 0 (a partial
update would be normalised against weights the beat loop keeps moving, so
it is refused rather than guessed).

Bad requests get an error reply with NATS micro error headers
(``Nats-Service-Error``, ``Nats-Service-Error-Code``: 400 bad body, 404
unknown verb) and a JSON body ``{"error": ..., "code": ...}`` naming what
was wrong; nothing in force changes. They are counted and logged once,
never fatal.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

import msgspec

from venom.daemon.bus import BusMessage, Subscription, error_headers
from venom.daemon.ratelog import ProblemLog
from venom.schemas import ControlAck, PluginStatus, Status, Weights

#: The keys of a ``weights`` request, in the order the genome keeps them.
WEIGHT_KEYS = ("R", "B", "E", "O")

_JSON = msgspec.json.Decoder()


def _json_kind(value: object) -> str:
    """What a decoded JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _names(keys: list[str]) -> str:
    """Keys for an error line: quoted, escaped, long ones and long lists cut."""
    shown = [repr(k) if len(k) <= 40 else repr(k[:40]) + "..." for k in keys[:5]]
    more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
    return ", ".join(shown) + more


def read_body(verb: str, data: bytes) -> object:
    """The JSON value of a request body; an empty (or blank) body is ``{}``."""
    if not data.strip():
        return {}
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{verb}: the body is not UTF-8 text (byte {exc.start})") from exc
    try:
        return _JSON.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{verb}: the body is not valid JSON: {exc}") from exc


def check_no_arguments(verb: str, data: bytes) -> None:
    """``status``/``pause``/``resume`` take an empty body or ``{}``; ValueError otherwise."""
    body = read_body(verb, data)
    if not isinstance(body, dict):
        raise ValueError(f"{verb} takes an empty body or {{}}, got a JSON {_json_kind(body)}")
    if body:
        raise ValueError(f"{verb} takes no arguments, got {_names(sorted(body))}")


def _weight(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"weights: {key} must be a number, got a JSON {_json_kind(value)}")
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float
        return math.inf


def weights_from_body(data: bytes) -> Weights:
    """The weights of a ``weights`` request: exactly R, B, E and O, each a number.

    Whether the numbers are usable (finite, >= 0, a finite sum > 0) is
    :meth:`Genome.set`'s check. ValueError names what is wrong.
    """
    body = read_body("weights", data)
    if not isinstance(body, dict):
        raise ValueError(
            f"weights takes a JSON object {{R, B, E, O}}, got a JSON {_json_kind(body)}"
        )
    unknown = sorted(set(body) - set(WEIGHT_KEYS))
    if unknown:
        raise ValueError(f"weights: unknown key(s) {_names(unknown)}; the keys are R, B, E, O")
    values = {key: _weight(key, body[key]) for key in WEIGHT_KEYS if key in body}
    missing = [key for key in WEIGHT_KEYS if key not in body]
    if missing:
        raise ValueError(f"weights needs all of R, B, E, O; missing {', '.join(missing)}")
    return Weights(**values)


if TYPE_CHECKING:
    from venom.daemon.arbiter import Arbiter

log = logging.getLogger("venom.control")


class Control:
    """Answers control requests for one arbiter."""

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        self.problems = ProblemLog(log)
        self._sub: Subscription | None = None
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
            load=a.load.report(),
        )

    async def _on_request(self, msg: BusMessage) -> None:
        t0 = time.perf_counter_ns()
        verb = msg.subject.rsplit(".", 1)[-1]
        error = ""
        try:
            body = self._answer(verb, msg.data)
            if body is None:
                error = "unknown"
                text = f"unknown control request {verb!r}; use status, pause, resume or weights"
                await self._error(msg, 404, text)
                return
        except ValueError as exc:
            error = str(exc)
            await self._error(msg, 400, error)
            return
        finally:
            self.arbiter.endpoint.record(time.perf_counter_ns() - t0, error)
        if msg.reply:
            await self.arbiter.bus.publish(msg.reply, body)

    def _answer(self, verb: str, data: bytes) -> bytes | None:
        """The reply to ``verb``; None: no such verb. A bad body raises ValueError first."""
        a = self.arbiter
        if verb == "weights":
            a.genome.set(weights_from_body(data))
            log.info("weights set by control request: %s", a.genome.weights)
        elif verb in ("status", "pause", "resume"):
            check_no_arguments(verb, data)
            if verb == "status":
                return a.codec.encode(self.status())
            if verb == "pause":
                a.pause()
            else:
                a.resume()
            log.info("%sd by control request", verb)
        else:
            return None
        return a.codec.encode(ControlAck(paused=a.paused, weights=a.genome.weights))

    async def _error(self, msg: BusMessage, code: int, text: str) -> None:
        self.problems.report("bad control request", "", msg.subject, text)
        if msg.reply:
            body = msgspec.json.encode({"error": text, "code": code})
            await self.arbiter.bus.publish(msg.reply, body, headers=error_headers(code, text))
