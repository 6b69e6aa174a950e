"""correlation estimator against numpy's corrcoef."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from venom.plugins.estimators import CorrelationConfig, CorrelationEstimator, pearson
from venom.plugins.estimators.comoments import SlidingCoMoments
from venom.plugins.sdk import validate_plugin
from venom.schemas import ConfigError, EstimateReply, Pulse

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("seed", range(5))
def test_pearson_matches_corrcoef(seed: int) -> None:
    rows = np.random.default_rng(seed).normal(size=(60, 5))
    np.testing.assert_allclose(pearson(rows), np.corrcoef(rows, rowvar=False), atol=1e-12)


def test_constant_column_gives_zero_not_nan() -> None:
    rows = np.column_stack([np.arange(10.0), np.ones(10)])
    assert pearson(rows)[0, 1] == 0.0


async def test_plugin_reports_pairs_above_the_threshold() -> None:
    assert validate_plugin(CorrelationEstimator) is CorrelationEstimator
    est = CorrelationEstimator(CorrelationConfig(signals=("a", "b", "c"), window=50))
    rng = np.random.default_rng(1)
    for beat in range(1, 80):
        a = float(rng.normal())
        features = {"a": a, "b": 2 * a + 0.01 * float(rng.normal()), "c": float(rng.normal())}
        reply = await est.handle(
            Pulse(beat=beat, issued_at=0, deadline=1, t_lambda=0.004, seed=beat, features=features)
        )
    assert isinstance(reply, EstimateReply)
    assert reply.values["r.a~b"] == pytest.approx(1.0, abs=0.01)
    assert abs(reply.values["r.a~c"]) < 0.5
    assert reply.values["pairs_above"] == 1.0
    assert reply.vectors["above"] == [0.0, 1.0]
    assert reply.values["samples"] == 50.0
    with pytest.raises(ConfigError, match="signals: correlation needs at least two"):
        CorrelationEstimator(CorrelationConfig(signals=("a",)))


@pytest.mark.parametrize("seed", range(4))
def test_rolling_correlations_match_pearson_on_the_window(seed: int) -> None:
    """The ring buffer against numpy's whole-window pearson, with drifts, spikes, constants."""
    rng = np.random.default_rng(seed)
    k, size = int(rng.integers(2, 7)), int(rng.integers(3, 40))
    window = SlidingCoMoments(k, size)
    rows: list[list[float]] = []
    for step in range(600):
        row = (rng.normal(size=k) * rng.uniform(0.1, 3.0, k) + 0.02 * step).tolist()
        row[0] = 1e6 if rng.random() < 0.05 else 0.0  # a mostly constant, spiking signal
        if 200 <= step < 300:
            row[-1] = 0.1  # constant for longer than the window
        window.push(row)
        rows = [*rows, row][-size:]
        assert len(window) == len(rows)
        if len(rows) >= 3:
            want = pearson(np.array(rows))
            got = window.correlations()
            for (i, j), r in zip(itertools.combinations(range(k), 2), got, strict=True):
                assert r == pytest.approx(want[i, j], abs=1e-9), (step, i, j)
