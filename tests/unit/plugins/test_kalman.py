"""Kalman and adaptive Kalman against hand-computed cases and a changed noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from venom.plugins.estimators import (
    AdaptiveKalmanEstimator,
    AdaptiveKalmanFilter,
    KalmanConfig,
    KalmanEstimator,
    KalmanFilter,
)
from venom.plugins.estimators.kalman_diagonal import (
    DiagonalAdaptiveKalmanFilter,
    DiagonalKalmanFilter,
)
from venom.plugins.sdk import validate_plugin
from venom.schemas import EstimateReply, Pulse

pytestmark = pytest.mark.anyio


def test_two_steps_match_the_closed_form() -> None:
    p0, r = 2.0, 0.5
    kf = KalmanFilter(
        np.eye(3), np.eye(3), np.zeros((3, 3)), r * np.eye(3), np.zeros(3), p0 * np.eye(3)
    )
    y1 = np.array([1.0, -2.0, 0.5])
    up = kf.step(y1)
    assert up is not None
    k1 = p0 / (p0 + r)
    np.testing.assert_allclose(kf.x, k1 * y1)
    p1 = p0 * r / (p0 + r)
    np.testing.assert_allclose(np.diag(kf.p), [p1] * 3)
    assert up.nis == pytest.approx(float(y1 @ y1) / (p0 + r))
    y2 = np.array([1.2, -1.8, 0.4])
    kf.step(y2)
    k2 = p1 / (p1 + r)
    np.testing.assert_allclose(kf.x, k1 * y1 + k2 * (y2 - k1 * y1))
    np.testing.assert_allclose(np.diag(kf.p), [p1 * r / (p1 + r)] * 3)


def test_prediction_with_dynamics_and_process_noise() -> None:
    kf = KalmanFilter(
        0.9 * np.eye(3), np.eye(3), 0.1 * np.eye(3), np.eye(3), np.array([1.0, 2.0, 3.0]), np.eye(3)
    )
    assert kf.step(None) is None
    np.testing.assert_allclose(kf.x, [0.9, 1.8, 2.7])
    np.testing.assert_allclose(kf.p, (0.81 + 0.1) * np.eye(3))


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="inconsistent shapes"):
        KalmanFilter(np.eye(3), np.eye(2), np.eye(3), np.eye(3), np.zeros(3), np.eye(3))


def test_adaptive_filter_follows_a_changed_measurement_noise() -> None:
    rng = np.random.default_rng(12345)
    truth = np.array([1.0, -1.0, 0.5])
    akf = AdaptiveKalmanFilter(
        np.eye(3),
        np.eye(3),
        1e-6 * np.eye(3),
        0.01 * np.eye(3),
        np.zeros(3),
        np.eye(3),
        window=50,
        forgetting=0.95,
    )
    adapted = 0
    for _ in range(1500):
        akf.step(truth + rng.normal(0.0, math.sqrt(0.5), 3))
        adapted += akf.adapted
    np.testing.assert_allclose(np.diag(akf.r), [0.5] * 3, rtol=0.25)
    assert adapted > 0
    # The noise drops tenfold: R follows it down.
    for _ in range(1500):
        akf.step(truth + rng.normal(0.0, math.sqrt(0.05), 3))
    np.testing.assert_allclose(np.diag(akf.r), [0.05] * 3, rtol=0.3)
    np.testing.assert_allclose(akf.x, truth, atol=0.1)


def pulse(beat: int, **features: float) -> Pulse:
    return Pulse(
        beat=beat, issued_at=0.0, deadline=1.0, t_lambda=0.004, seed=beat, features=features
    )


async def test_plugins_reply_with_state_innovation_and_nis() -> None:
    for cls in (KalmanEstimator, AdaptiveKalmanEstimator):
        assert validate_plugin(cls) is cls
        est = cls(KalmanConfig())
        reply = await est.handle(pulse(1, **{"plant.y0": 1.0, "plant.y1": 2.0, "plant.y2": 3.0}))
        assert isinstance(reply, EstimateReply)
        assert reply.values["measured"] == 1.0
        assert {"x0", "p2", "innovation_1", "nis"} <= reply.values.keys()
        assert len(reply.vectors["state"]) == 3
        missing = await est.handle(pulse(2, **{"plant.y0": float("nan")}))
        assert isinstance(missing, EstimateReply)
        assert missing.values["measured"] == 0.0
        assert "nis" not in missing.values
    adaptive = await AdaptiveKalmanEstimator().handle(pulse(1))
    assert isinstance(adaptive, EstimateReply)
    assert adaptive.values["r0"] == pytest.approx(1e-2)


def random_diagonal_model(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """(A, C, Q, R) diagonal, as the fast path takes them."""
    return [
        np.diag(rng.uniform(-1.2, 1.2, n)),
        np.diag(rng.uniform(0.2, 2.0, n) * rng.choice([-1.0, 1.0], n)),
        np.diag(rng.uniform(1e-4, 1e-1, n)),
        np.diag(rng.uniform(1e-3, 1.0, n)),
    ]


@pytest.mark.parametrize("seed", range(8))
def test_diagonal_filters_match_the_numpy_filters(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    a, c, q, r = random_diagonal_model(rng, n)
    p0 = float(rng.uniform(0.1, 3.0))
    window = int(rng.integers(2, 8))
    reference = [
        KalmanFilter(a, c, q, r, np.zeros(n), p0 * np.eye(n)),
        AdaptiveKalmanFilter(a, c, q, r, np.zeros(n), p0 * np.eye(n), window=window),
    ]
    da, dc, dq, dr = (np.diag(m).tolist() for m in (a, c, q, r))
    fast = [
        DiagonalKalmanFilter(da, dc, dq, dr, p0),
        DiagonalAdaptiveKalmanFilter(da, dc, dq, dr, p0, window=window),
    ]
    for _ in range(300):
        y = None if rng.random() < 0.1 else rng.normal(0.0, 2.0, n)
        for ref, quick in zip(reference, fast, strict=True):
            want = ref.step(y)
            got = quick.step(None if y is None else y.tolist())
            assert (got is None) == (want is None)
            if got is not None and want is not None:
                np.testing.assert_allclose(got[0], want.innovation, rtol=1e-12, atol=1e-14)
                assert got[1] == pytest.approx(want.nis, rel=1e-12)
            np.testing.assert_allclose(quick.x, ref.x, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(quick.p, np.diag(ref.p), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(quick.r, np.diag(ref.r), rtol=1e-12)
            assert quick.adapted == bool(getattr(ref, "adapted", False))


async def test_plugins_take_the_fast_path_only_for_diagonal_models() -> None:
    rng = np.random.default_rng(7)
    for cls in (KalmanEstimator, AdaptiveKalmanEstimator):
        fast, reference = cls(KalmanConfig(window=5)), cls(KalmanConfig(window=5))
        assert isinstance(fast.filter, DiagonalKalmanFilter)
        reference.filter = reference._make_filter()  # the numpy filter, same model
        for beat in range(1, 200):
            y = rng.normal(1.0, 0.3, 3)
            features = {} if beat % 17 == 0 else {f"plant.y{i}": float(v) for i, v in enumerate(y)}
            got, want = (
                await fast.handle(pulse(beat, **features)),
                await reference.handle(pulse(beat, **features)),
            )
            assert isinstance(got, EstimateReply)
            assert isinstance(want, EstimateReply)
            assert list(got.values) == list(want.values)  # same keys, same order
            for key, value in want.values.items():
                assert got.values[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
            assert got.vectors.keys() == want.vectors.keys()
            assert got.adapted == want.adapted
        coupled = KalmanConfig(a=[[0.9, 0.05, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 0.9]])
        assert isinstance(cls(coupled).filter, KalmanFilter)
