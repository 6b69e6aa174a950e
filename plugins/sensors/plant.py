"""optical-plant: the simulated plant the loop controls (SPEC 3, sensors).

A 3-state linear system x' = A x + B u + w, y = C x + v, with a thermal
proxy that rises with throughput (write cycles) and falls with cooling,
timing jitter that grows with temperature, a BER estimate from the jitter,
a coherence signal, and a recovery mode. Each pulse it first applies the
previous beat's decision carried in the pulse context:

- QUARANTINE → recovery for ``recovery_beats``: no throughput, full cooling;
- BALANCE → a stronger feedback gain for ``balance_beats``;
- OPTIMIZE → more throughput (``optimize_boost``) for the next beat;
- ``context.cooling`` (low / medium / high, the thermal guard's advice).

Then it steps once, with noise drawn from the beat's seed (same seed and
scenario → same run), applies the scenario's disturbances, publishes the
beat's ground truth on ``<prefix>.mesh.label`` and replies with Telemetry.
With ``apply_decisions = false`` the loop is open (for comparisons).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
import numpy as np
from msgspec import Meta

from venom.plugins.guards.ber import ber_from_jitter
from venom.plugins.sdk import Plugin, PluginContext
from venom.plugins.sensors.scenario import Scenario, load_scenario
from venom.schemas import ConfigError, Label, Pulse, Reply, Role, Telemetry

Vector = tuple[float, float, float]


class PlantConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scenario: str = "default"
    apply_decisions: bool = True
    a: list[list[float]] = msgspec.field(
        default_factory=lambda: [[0.95, 0.05, 0.0], [0.0, 0.9, 0.05], [0.0, 0.0, 0.9]]
    )
    reference: Vector = (1.0, 0.5, 0.25)
    gain: Annotated[float, Meta(ge=0, le=1)] = 0.1
    balance_gain: Annotated[float, Meta(ge=0, le=1)] = 0.3
    balance_beats: Annotated[int, Meta(ge=1)] = 20
    process_noise: Annotated[float, Meta(ge=0)] = 0.01
    measurement_noise: Annotated[float, Meta(ge=0)] = 0.02
    ambient: float = 25.0
    start_temperature: float = 68.0
    heat_per_throughput: Annotated[float, Meta(ge=0)] = 0.006
    passive_cooling: Annotated[float, Meta(ge=0, le=1)] = 0.01
    cooling: dict[str, float] = msgspec.field(
        default_factory=lambda: {"low": 0.1, "medium": 0.3, "high": 0.6}
    )
    limit: float = 85.0
    throughput: Annotated[float, Meta(gt=0)] = 100.0
    optimize_boost: Annotated[float, Meta(ge=1)] = 1.2
    recovery_beats: Annotated[int, Meta(ge=1)] = 20
    jitter_base: Annotated[float, Meta(ge=0)] = 0.03
    jitter_per_degree: Annotated[float, Meta(ge=0)] = 0.0008
    jitter_noise: Annotated[float, Meta(ge=0)] = 0.002


class OpticalPlant(Plugin[PlantConfig]):
    """The default plant: applies the last decision, steps, reports telemetry."""

    name: ClassVar[str] = "optical-plant"
    role: ClassVar[Role] = "sensor"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[PlantConfig]] = PlantConfig
    description: ClassVar[str] = "simulated 3-state optical plant with disturbance scenarios"

    def __init__(
        self, config: PlantConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        c = self.config
        self.scenario: Scenario = load_scenario(c.scenario, key="scenario")
        self.a = self._matrix(c)
        self.ref = np.array(c.reference, dtype=float)
        self.x = self.ref.copy()
        self.temperature = c.start_temperature
        self.recovery_left = 0
        self.balance_left = 0
        self.boost = False
        self.max_temperature = self.temperature

    @classmethod
    def check(cls, config: PlantConfig) -> None:
        """The scenario loads and ``a`` is 3x3 (ConfigError names the key)."""
        cls._matrix(config)
        load_scenario(config.scenario, key="scenario")

    @staticmethod
    def _matrix(config: PlantConfig) -> np.ndarray[Any, np.dtype[np.float64]]:
        """``a`` as a 3x3 array; ConfigError when it is not one."""
        a = config.a
        if len(a) != 3 or any(len(row) != 3 for row in a):
            shape = " x ".join([str(len(a)), "/".join(str(len(row)) for row in a) or "0"])
            raise ConfigError(f"must be 3x3, got {shape}", key="a")
        return np.array(a, dtype=float)

    def apply(self, pulse: Pulse) -> str:
        """Apply the previous decision and cooling advice; the cooling level in force."""
        ctx = pulse.context
        if not self.config.apply_decisions:
            return ""
        if ctx.decision == "QUARANTINE" and self.recovery_left == 0:
            self.recovery_left = self.config.recovery_beats
        elif ctx.decision == "BALANCE":
            self.balance_left = self.config.balance_beats
        self.boost = ctx.decision == "OPTIMIZE"
        return "high" if self.recovery_left else ctx.cooling

    def step(self, pulse: Pulse) -> dict[str, float]:
        """One beat of the plant; the telemetry values (y* absent during a dropout)."""
        c = self.config
        rng = np.random.default_rng(pulse.seed)
        cooling = self.apply(pulse)
        active = {d.kind: d for d in self.scenario.active(pulse.beat)}
        gain = c.balance_gain if self.balance_left else c.gain
        self.x = (
            self.a @ self.x
            + gain * (self.ref - self.x)
            + (np.eye(3) - self.a) @ self.ref
            + rng.normal(0.0, c.process_noise, 3)
        )
        recovering = self.recovery_left > 0
        throughput = 0.0 if recovering else c.throughput * (c.optimize_boost if self.boost else 1.0)
        heat = c.heat_per_throughput * throughput
        spike = active.get("thermal_spike")
        if spike is not None:
            heat += spike.magnitude / spike.duration
        self.temperature += (
            heat - c.cooling.get(cooling, 0.0) - c.passive_cooling * (self.temperature - c.ambient)
        )
        self.max_temperature = max(self.max_temperature, self.temperature)
        jitter = (
            c.jitter_base
            + c.jitter_per_degree * max(0.0, self.temperature - c.ambient)
            + abs(rng.normal(0.0, c.jitter_noise))
        )
        burst = active.get("jitter_burst")
        if burst is not None:
            jitter += burst.magnitude
        ber = ber_from_jitter(jitter)
        coherence = max(
            0.0, min(1.0, 1.0 - 2.0 * max(0.0, jitter - c.jitter_base) + rng.normal(0.0, 0.005))
        )
        drop = active.get("coherence_drop")
        if drop is not None:
            coherence = max(0.0, coherence - drop.magnitude)
        values = {
            "temperature": self.temperature,
            "jitter": jitter,
            "ber": ber,
            "coherence": coherence,
            "throughput": throughput,
            "syndrome": float(rng.poisson(ber * 1e9)) if ber < 1e-3 else 1e6,
            "recovery": 1.0 if recovering else 0.0,
        }
        if "sensor_dropout" not in active:
            y = self.x + rng.normal(0.0, c.measurement_noise, 3)
            values.update(y0=float(y[0]), y1=float(y[1]), y2=float(y[2]))
        self.recovery_left = max(0, self.recovery_left - 1)
        self.balance_left = max(0, self.balance_left - 1)
        return values

    async def handle(self, pulse: Pulse) -> Reply:
        values = self.step(pulse)
        active = self.scenario.active(pulse.beat)
        label = Label(
            beat=pulse.beat,
            label=1 if active else 0,
            kind=",".join(sorted({d.kind for d in active})),
        )
        await self.context.publish(self.context.subjects.mesh_label, label)
        return Telemetry(source="plant", values=values, state=self.x.tolist(), time=pulse.issued_at)
