"""stability estimator: spectrum against independent computations, variance trend."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from venom.plugins.cores.stats import Rolling
from venom.plugins.estimators import (
    StabilityConfig,
    StabilityEstimator,
    spectral_abscissa,
    spectral_radius,
)
from venom.plugins.estimators.sliding import SlidingWindow
from venom.plugins.sdk import validate_plugin
from venom.schemas import ConfigError, EstimateReply, Pulse

pytestmark = pytest.mark.anyio


def test_known_spectra() -> None:
    # Rotation by θ scaled by ρ: eigenvalues ρ·e^{±iθ}.
    rho, theta = 0.8, 0.7
    m = rho * np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    assert spectral_radius(m) == pytest.approx(rho)
    assert spectral_abscissa(m) == pytest.approx(rho * math.cos(theta))
    upper = np.array([[-1.0, 5.0, 2.0], [0.0, -0.2, 7.0], [0.0, 0.0, 0.3]])
    assert spectral_abscissa(upper) == pytest.approx(0.3)  # triangular: the diagonal
    assert spectral_radius(upper) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(20))
def test_random_matrices_against_independent_methods(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    m = rng.normal(size=(n, n))
    eig = np.linalg.eig(m).eigenvalues
    assert spectral_abscissa(m) == pytest.approx(float(np.max(eig.real)))
    assert spectral_radius(m) == pytest.approx(float(np.max(np.abs(eig))))
    # Gelfand: ||M^k||^(1/k) → ρ(M), from above for the spectral norm.
    k = 200
    scaled = m / spectral_radius(m)
    gelfand = np.linalg.norm(np.linalg.matrix_power(scaled, k), 2) ** (1 / k)
    assert gelfand * (1 + 1e-9) >= 1.0
    assert gelfand == pytest.approx(1.0, abs=0.05)
    sym = m + m.T
    assert spectral_abscissa(sym) == pytest.approx(float(np.max(np.linalg.eigvalsh(sym))))


async def test_score_falls_when_the_variance_grows() -> None:
    rng = random.Random(3)
    steady, spreading = StabilityEstimator(), StabilityEstimator()
    for b in range(1, 200):
        s = await steady.handle(
            Pulse(
                beat=b,
                issued_at=0,
                deadline=1,
                t_lambda=0.004,
                seed=b,
                features={"plant.y0": rng.gauss(0, 1)},
            )
        )
        g = await spreading.handle(
            Pulse(
                beat=b,
                issued_at=0,
                deadline=1,
                t_lambda=0.004,
                seed=b,
                features={"plant.y0": rng.gauss(0, 0.05 * b)},
            )
        )
    assert isinstance(s, EstimateReply)
    assert isinstance(g, EstimateReply)
    assert g.values["stability"] < 0.5 < s.values["stability"]
    assert s.values["radius"] == pytest.approx(0.9)
    assert s.values["margin"] == pytest.approx(0.1)


def test_plugin_and_config_checks() -> None:
    assert validate_plugin(StabilityEstimator) is StabilityEstimator
    with pytest.raises(ConfigError, match="closed_loop: must be a square"):
        StabilityEstimator(StabilityConfig(closed_loop=[[1.0, 2.0]]))
    cont = StabilityEstimator(
        StabilityConfig(closed_loop=[[-2.0, 0.0], [0.0, -0.5]], discrete=False)
    )
    assert cont.abscissa == pytest.approx(-0.5)


@pytest.mark.parametrize("seed", range(6))
def test_sliding_window_matches_the_rolling_sums(seed: int) -> None:
    """Running sums against Rolling's whole-window sums, spikes and constant runs included."""
    rng = random.Random(seed)
    size = rng.randint(3, 60)
    fast, slow = SlidingWindow(size), Rolling(size)
    for step in range(3000):
        if 1000 <= step < 1000 + 3 * size:
            value = 0.1  # a constant run longer than the window
        elif rng.random() < 0.02:
            value = rng.choice([1e6, -3e4, 250.0])  # a spike, which then leaves the window
        else:
            value = 5.0 + 0.01 * step + rng.gauss(0.0, 0.3)
        fast.push(value)
        slow.push(value)
        assert len(fast) == len(slow)
        scale = max(abs(v) for v in slow.values)
        assert fast.mean() == pytest.approx(slow.mean(), rel=1e-12, abs=1e-12 * scale)
        assert fast.variance() == pytest.approx(slow.variance(), rel=1e-9, abs=1e-12 * scale**2)
        assert fast.slope() == pytest.approx(slow.slope(), rel=1e-9, abs=1e-12 * scale)
        if 1000 + size <= step < 1000 + 3 * size:
            assert fast.variance() == 0.0
            assert fast.slope() == 0.0
