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
