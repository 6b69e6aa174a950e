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

import tomllib
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


def load_scenario(spec: str) -> Scenario:
    """A built-in scenario by name, or a TOML file by path."""
    if spec in BUILTIN:
        text = (
            resources.files("venom.plugins.sensors").joinpath(f"scenarios/{spec}.toml").read_text()
        )
        origin = f"built-in scenario {spec!r}"
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(
                f"no scenario {spec!r}: not one of {', '.join(BUILTIN)} and no such file",
                key="run.scenario",
            )
        text, origin = path.read_text(), str(path)
    try:
        return msgspec.convert(tomllib.loads(text), Scenario)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}", key="run.scenario") from exc
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{origin}: {exc}", key="run.scenario") from exc
