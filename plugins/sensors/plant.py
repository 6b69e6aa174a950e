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

The beat is shaped for speed without changing a bit of the run: the noise
comes from one reseeded :class:`~venom.plugins.sensors.beatrng.BeatRng`
(``default_rng(seed)``'s stream at a third of the cost), the three first
normal draws of a beat are taken in one call (``normal(0, s)`` is
``0 + s·z``, so the same floats), the state is plain floats except A·x
(numpy's matrix product, whose rounding a Python sum would not repeat), and
the scenario's disturbances and label come from a
:class:`~venom.plugins.sensors.scenario.Schedule`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec
import numpy as np
from msgspec import Meta

from venom.plugins.guards.ber import ber_from_jitter
from venom.plugins.sdk import Plugin, PluginContext
from venom.plugins.sensors.beatrng import BeatRng
from venom.plugins.sensors.scenario import Scenario, Schedule, load_scenario
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
        self.schedule = Schedule(self.scenario)
        self.a = self._matrix(c)
        self.ref = [float(r) for r in c.reference]
        #: (I − A)·ref, the pull that holds the reference a fixed point; numpy, as it was.
        self.pull = ((np.eye(3) - self.a) @ np.array(self.ref)).tolist()
        self.x = list(self.ref)
        self.rng = BeatRng()
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
        rng = self.rng.reseed(pulse.seed)
        cooling = self.apply(pulse)
        active = self.schedule.at(pulse.beat)
        gain = c.balance_gain if self.balance_left else c.gain
        # The process noise (3), the jitter's and the coherence's, in one draw.
        z = rng.standard_normal(5).tolist()
        noise = c.process_noise
        self.x = [
            ax + gain * (ref - x) + pull + (0.0 + noise * n)
            for ax, ref, x, pull, n in zip(
                (self.a @ self.x).tolist(), self.ref, self.x, self.pull, z, strict=False
            )
        ]
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
            + abs(0.0 + c.jitter_noise * z[3])
        )
        burst = active.get("jitter_burst")
        if burst is not None:
            jitter += burst.magnitude
        ber = ber_from_jitter(jitter)
        coherence = max(
            0.0, min(1.0, 1.0 - 2.0 * max(0.0, jitter - c.jitter_base) + (0.0 + 0.005 * z[4]))
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
            y0, y1, y2 = rng.normal(0.0, c.measurement_noise, 3).tolist()
            x0, x1, x2 = self.x
            values.update(y0=x0 + y0, y1=x1 + y1, y2=x2 + y2)
        self.recovery_left = max(0, self.recovery_left - 1)
        self.balance_left = max(0, self.balance_left - 1)
        return values

    async def handle(self, pulse: Pulse) -> Reply:
        values = self.step(pulse)
        s = self.schedule  # at this beat since step()
        label = Label(beat=pulse.beat, label=s.label, kind=s.kind)
        await self.context.publish(self.context.subjects.mesh_label, label)
        return Telemetry(source="plant", values=values, state=self.x, time=pulse.issued_at)
