"""flow: sensitivity of a metric to small input noise (SPEC 3).

    flow = E[(f(x + ε·n) − f(x))²] / ε²,   n ~ N(0, I)

estimated with ``samples`` draws from the beat's seed (deterministic), then
EMA-smoothed. x is the vector of the configured features; f is one of
``norm`` (‖x‖), ``energy`` (‖x‖²) or ``linear`` (w·x with the configured
weights). For small ε the flow approaches ‖∇f(x)‖².
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec
import numpy as np
from msgspec import Meta
from numpy.typing import NDArray

from venom.plugins.sdk import Plugin, PluginContext, lookup
from venom.schemas import ConfigError, EstimateReply, Pulse, Reply, Role


class FlowConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    features: tuple[str, ...] = ("plant.y0", "plant.y1", "plant.y2")
    function: Literal["norm", "energy", "linear"] = "norm"
    weights: tuple[float, ...] = ()
    epsilon: Annotated[float, Meta(gt=0)] = 1e-3
    samples: Annotated[int, Meta(ge=1, le=10_000)] = 64
    alpha: Annotated[float, Meta(gt=0, le=1)] = 0.1


def apply(function: str, x: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
    """f over the rows of ``x`` (shape (k, n)) → shape (k,)."""
    if function == "norm":
        return np.asarray(np.linalg.norm(x, axis=1))
    if function == "energy":
        return np.asarray(np.einsum("ij,ij->i", x, x))
    return np.asarray(x @ w)


def flow(
    function: str,
    x: NDArray[np.float64],
    w: NDArray[np.float64],
    epsilon: float,
    noise: NDArray[np.float64],
) -> float:
    """E[(f(x + ε·n) − f(x))²] / ε² over the rows of ``noise``."""
    base = apply(function, x[None, :], w)[0]
    moved = apply(function, x[None, :] + epsilon * noise, w)
    return float(np.mean((moved - base) ** 2) / epsilon**2)


class FlowEstimator(Plugin[FlowConfig]):
    """EMA of the metric's sensitivity to input noise."""

    name: ClassVar[str] = "flow"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[FlowConfig]] = FlowConfig
    description: ClassVar[str] = "sensitivity of a metric to small input noise (EMA)"

    def __init__(
        self, config: FlowConfig | None = None, context: PluginContext | None = None
    ) -> None:
        super().__init__(config, context)
        self.check(self.config)
        c = self.config
        self.w = np.array(c.weights or [0.0] * len(c.features), dtype=float)
        self.smoothed: float | None = None

    @classmethod
    def check(cls, config: FlowConfig) -> None:
        """A linear flow has one weight per feature."""
        if config.function == "linear" and len(config.weights) != len(config.features):
            raise ConfigError(
                f"linear flow needs {len(config.features)} weights, got {len(config.weights)}",
                key="weights",
            )

    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        raw = [lookup(pulse, f) for f in c.features]
        if None in raw:
            return EstimateReply(
                estimator=self.name, values={"flow": self.smoothed or 0.0, "measured": 0.0}
            )
        x = np.array(raw, dtype=float)
        noise = np.random.default_rng(pulse.seed).standard_normal((c.samples, len(x)))
        value = flow(c.function, x, self.w, c.epsilon, noise)
        prev = self.smoothed
        self.smoothed = value if prev is None else prev + c.alpha * (value - prev)
        return EstimateReply(
            estimator=self.name, values={"flow": self.smoothed, "raw": value, "measured": 1.0}
        )
