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
from collections.abc import Callable
from typing import Protocol

import msgspec

from venom.daemon.beat.snapshot import ArbiterSnapshot
from venom.daemon.bus.base import Bus, BusMessage, Subscription, error_headers
from venom.daemon.bus.micro import EndpointStats
from venom.daemon.observe.problems import ProblemLog
from venom.schemas import Codec, ControlAck, Status, Subjects, Weights

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


log = logging.getLogger("venom.control")

#: The fields of :class:`Status` that the snapshot has under the same name.
_STATUS_FROM_SNAPSHOT = tuple(
    sorted(
        ({f.name for f in msgspec.structs.fields(Status)} - {"plugins", "decisions"})
        & {f.name for f in msgspec.structs.fields(ArbiterSnapshot)}
    )
)


class ArbiterCommands(Protocol):
    """What a control request may change in the arbiter."""

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def set_weights(self, weights: Weights) -> Weights: ...


class Control:
    """Answers control requests for one arbiter: reads its snapshots, sends it commands."""

    def __init__(
        self,
        snapshot: Callable[[], ArbiterSnapshot],
        commands: ArbiterCommands,
        bus: Bus,
        subjects: Subjects,
        codec: Codec,
        endpoint: EndpointStats,
        *,
        epoch: str = "",
    ) -> None:
        self.snapshot = snapshot
        #: HA: this arbiter's own subjects (``<prefix>.ctl.<epoch>.*``) beside the shared ones.
        self.epoch = epoch
        self.commands = commands
        self.bus = bus
        self.subjects = subjects
        self.codec = codec
        self.endpoint = endpoint
        self.problems = ProblemLog(log)
        self._subs: list[Subscription] = []
        self._started = time.monotonic()

    async def start(self) -> None:
        self._subs.append(await self.bus.subscribe(self.subjects.ctl_wildcard, self._on_shared))
        if self.epoch:
            own = self.subjects.ctl_of(self.epoch)
            self._subs.append(await self.bus.subscribe(own, self._on_request))

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()
        self._subs = []

    async def _on_shared(self, msg: BusMessage) -> None:
        """``<prefix>.ctl.*``: the leader answers; a standby keeps quiet (HA)."""
        if self.snapshot().role != "standby":
            await self._on_request(msg)

    def status(self) -> Status:
        """What ``venom status`` prints: the snapshot's fields of the same name, and uptime."""
        s = self.snapshot()
        same = {name: getattr(s, name) for name in _STATUS_FROM_SNAPSHOT}
        return Status(
            **same,
            t_lambda=s.period,
            plugins=list(s.plugins),
            decisions=dict(s.decisions),
            uptime_s=round(time.monotonic() - self._started, 3),
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
            self.endpoint.record(time.perf_counter_ns() - t0, error)
        if msg.reply:
            await self.bus.publish(msg.reply, body)

    def _answer(self, verb: str, data: bytes) -> bytes | None:
        """The reply to ``verb``; None: no such verb. A bad body raises ValueError first."""
        if verb == "weights":
            weights = self.commands.set_weights(weights_from_body(data))
            log.info("weights set by control request: %s", weights)
        elif verb in ("status", "pause", "resume"):
            check_no_arguments(verb, data)
            if verb == "status":
                return self.codec.encode(self.status())
            if verb == "pause":
                self.commands.pause()
            else:
                self.commands.resume()
            log.info("%sd by control request", verb)
        else:
            return None
        s = self.snapshot()
        return self.codec.encode(ControlAck(paused=s.paused, weights=s.weights))

    async def _error(self, msg: BusMessage, code: int, text: str) -> None:
        self.problems.report("bad control request", "", msg.subject, text)
        if msg.reply:
            body = msgspec.json.encode({"error": text, "code": code})
            await self.bus.publish(msg.reply, body, headers=error_headers(code, text))
