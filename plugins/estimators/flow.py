"""flow: sensitivity of a metric to small input noise (SPEC 3).

    flow = E[(f(x + ε·n) − f(x))²] / ε²,   n ~ N(0, I)

estimated with ``samples`` draws from the beat's seed (deterministic), then
EMA-smoothed. x is the vector of the configured features; f is one of
``norm`` (‖x‖), ``energy`` (‖x‖²) or ``linear`` (w·x with the configured
weights). For small ε the flow approaches ‖∇f(x)‖².

The noise comes from a reseeded :class:`~venom.plugins.sensors.beatrng.BeatRng`
(the draws of ``default_rng(seed)`` without building one a beat), and the
``norm`` flow, the default, runs as in-place ufuncs on one buffer: the same
operations as ``np.linalg.norm(..., axis=1)`` and ``np.mean``, so the same
bits (tests/unit/plugins/test_flow.py), in a third of the time.
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

import msgspec
import numpy as np
from msgspec import Meta
from numpy.typing import NDArray

from venom.plugins.sdk import Plugin, PluginContext
from venom.plugins.sensors.beatrng import BeatRng
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
    if function == "norm":
        return _norm_flow(x, epsilon, noise)
    base = apply(function, x[None, :], w)[0]
    moved = apply(function, x[None, :] + epsilon * noise, w)
    return float(np.mean((moved - base) ** 2) / epsilon**2)


def _norm_flow(x: NDArray[np.float64], epsilon: float, noise: NDArray[np.float64]) -> float:
    """:func:`flow` for ``norm``: ‖x‖ as √(Σx²) summed in order, as numpy sums 3 to 7 terms.

    For more terms numpy sums pairwise, so ‖x‖ is then numpy's too.
    """
    xs = x.tolist()
    base = (
        math.sqrt(sum(v * v for v in xs)) if len(xs) < 8 else float(np.sqrt(np.add.reduce(x * x)))
    )
    moved = noise * epsilon
    moved += x
    moved *= moved
    d = np.add.reduce(moved, axis=1)
    np.sqrt(d, out=d)
    d -= base
    d *= d
    return float(np.add.reduce(d)) / len(d) / epsilon**2


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
        self.rng = BeatRng()

    @classmethod
    def check(cls, config: FlowConfig) -> None:
        """A linear flow has one weight per feature."""
        if config.function == "linear" and len(config.weights) != len(config.features):
            raise ConfigError(
                f"linear flow needs {len(config.features)} weights, got {len(config.weights)}",
                key="weights",
            )

    def _features(self, pulse: Pulse) -> list[float] | None:
        """x from the features, else the context's estimates; None unless all finite."""
        names = self.config.features
        raw = list(map(pulse.features.get, names))
        if None in raw:
            estimates = pulse.context.estimates
            raw = [estimates.get(f) if v is None else v for f, v in zip(names, raw, strict=True)]
            if None in raw:
                return None
        if not all(map(math.isfinite, raw)):  # type: ignore[arg-type]
            return None
        return raw  # type: ignore[return-value]

    async def handle(self, pulse: Pulse) -> Reply:
        c = self.config
        raw = self._features(pulse)
        if raw is None:
            return EstimateReply(
                estimator=self.name, values={"flow": self.smoothed or 0.0, "measured": 0.0}
            )
        x = np.array(raw, dtype=float)
        noise = self.rng.reseed(pulse.seed).standard_normal((c.samples, len(x)))
        value = flow(c.function, x, self.w, c.epsilon, noise)
        prev = self.smoothed
        self.smoothed = value if prev is None else prev + c.alpha * (value - prev)
        return EstimateReply(
            estimator=self.name, values={"flow": self.smoothed, "raw": value, "measured": 1.0}
        )
