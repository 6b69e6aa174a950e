"""flow estimator on functions whose sensitivity is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from venom.plugins.estimators import FlowConfig, FlowEstimator, flow
from venom.plugins.sdk import validate_plugin
from venom.schemas import ConfigError, EstimateReply, Pulse

pytestmark = pytest.mark.anyio

NOISE = np.random.default_rng(0).standard_normal((20000, 3))


def test_linear_function_gives_the_squared_weight_norm() -> None:
    w = np.array([1.0, -2.0, 0.5])
    # (w·εn)²/ε² averages to ‖w‖² = 5.25 for standard normal noise.
    assert flow("linear", np.array([3.0, 1.0, 4.0]), w, 1e-3, NOISE) == pytest.approx(
        5.25, rel=0.03
    )


def test_energy_and_norm_match_the_gradient() -> None:
    x = np.array([1.0, 2.0, 2.0])  # ‖x‖ = 3
    # energy: ∇ = 2x → ‖∇‖² = 4‖x‖² = 36; norm: ∇ = x/‖x‖ → 1.
    assert flow("energy", x, np.zeros(3), 1e-4, NOISE) == pytest.approx(36.0, rel=0.03)
    assert flow("norm", x, np.zeros(3), 1e-4, NOISE) == pytest.approx(1.0, rel=0.03)


async def test_plugin_is_deterministic_and_smoothed() -> None:
    assert validate_plugin(FlowEstimator) is FlowEstimator
    features = {"plant.y0": 1.0, "plant.y1": 2.0, "plant.y2": 2.0}
    a, b = FlowEstimator(), FlowEstimator()
    for beat in range(1, 30):
        p = Pulse(beat=beat, issued_at=0, deadline=1, t_lambda=0.004, seed=beat, features=features)
        ra, rb = await a.handle(p), await b.handle(p)
        assert ra == rb
    assert isinstance(ra, EstimateReply)
    assert ra.values["flow"] == pytest.approx(1.0, rel=0.2)
    with pytest.raises(ConfigError, match="weights: linear flow needs 3 weights"):
        FlowEstimator(FlowConfig(function="linear"))


@pytest.mark.parametrize("n", [1, 3, 7, 8, 13])
def test_the_norm_flow_is_numpys_to_the_bit(n: int) -> None:
    """The in-place norm path against the whole-array formula it replaced."""
    rng = np.random.default_rng(n)
    for _ in range(200):
        x, noise = rng.normal(size=n) * rng.uniform(0.1, 10.0), rng.standard_normal((64, n))
        base = np.linalg.norm(x[None, :], axis=1)[0]
        moved = np.linalg.norm(x[None, :] + 1e-3 * noise, axis=1)
        assert flow("norm", x, np.zeros(n), 1e-3, noise) == float(
            np.mean((moved - base) ** 2) / 1e-3**2
        )
