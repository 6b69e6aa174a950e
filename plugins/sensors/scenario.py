"""Disturbance scenarios: data files that say what goes wrong when (SPEC 3).

A scenario is a TOML file::

    name = "default"
    description = "..."

    [[disturbance]]
    kind = "thermal_spike"     # thermal_spike | jitter_burst | sensor_dropout | coherence_drop
    start = 400                # beat
    duration = 60              # beats
    magnitude = 25.0           # kind-specific: °C, jitter UI, -, coherence drop

Built-in scenarios (``calm``, ``default``, ``storm``) ship with the package;
``--scenario`` takes one of their names or a path. Invalid files stop the
start with an error naming the file and the key.
"""

from __future__ import annotations

import math
import tomllib
from bisect import bisect_right
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from venom.schemas import ConfigError

Kind = Literal["thermal_spike", "jitter_burst", "sensor_dropout", "coherence_drop"]


class Disturbance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    kind: Kind
    start: Annotated[int, Meta(ge=1)]
    duration: Annotated[int, Meta(ge=1)]
    magnitude: float = 1.0

    def active(self, beat: int) -> bool:
        return self.start <= beat < self.start + self.duration


class Scenario(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    description: str = ""
    disturbance: list[Disturbance] = []

    def active(self, beat: int) -> list[Disturbance]:
        """The disturbances in force at ``beat``."""
        return [d for d in self.disturbance if d.active(beat)]


BUILTIN = ("calm", "default", "storm")


def load_scenario(spec: str, *, key: str = "run.scenario") -> Scenario:
    """A built-in scenario by name, or a TOML file by path.

    ConfigError names ``key`` (the setting that gave ``spec``), the file and
    what is wrong with it.
    """
    if spec in BUILTIN:
        text = (
            resources.files("venom.plugins.sensors").joinpath(f"scenarios/{spec}.toml").read_text()
        )
        origin = f"built-in scenario {spec!r}"
    else:
        text, origin = _read(spec, key), spec
    try:
        return msgspec.convert(tomllib.loads(text), Scenario)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}", key=key) from exc
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{origin}: {exc}", key=key) from exc


def _read(spec: str, key: str) -> str:
    """The text of the scenario file ``spec``; ConfigError when it cannot be read."""
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(
            f"no scenario {spec!r}: not one of {', '.join(BUILTIN)} and no such file", key=key
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{spec}: not a TOML file (not UTF-8 text: {exc.reason})", key=key
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{spec}: cannot read: {exc.strerror or exc}", key=key) from exc


class Schedule:
    """What of a scenario is in force at a beat, worked out once per stretch of beats.

    The set of active disturbances changes only where one starts or ends; between
    two such beats :meth:`at` answers from the last answer (the plant asks every beat).
    """

    __slots__ = ("_edges", "_hi", "_lo", "active", "kind", "label", "scenario")

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        ends = {d.start for d in scenario.disturbance} | {
            d.start + d.duration for d in scenario.disturbance
        }
        self._edges = sorted(ends)
        self._lo = self._hi = 0.0  # the answer below holds for lo <= beat < hi
        #: The disturbances in force by kind (the last of a kind wins), as the plant reads them.
        self.active: dict[str, Disturbance] = {}
        #: The beat's ground truth: 1 when any disturbance is in force, and their kinds.
        self.label = 0
        self.kind = ""

    def at(self, beat: int) -> dict[str, Disturbance]:
        if not self._lo <= beat < self._hi:
            i = bisect_right(self._edges, beat)
            self._lo = self._edges[i - 1] if i else -math.inf
            self._hi = self._edges[i] if i < len(self._edges) else math.inf
            active = self.scenario.active(beat)
            self.active = {d.kind: d for d in active}
            self.label = 1 if active else 0
            self.kind = ",".join(sorted({d.kind for d in active}))
        return self.active
