"""Estimators: Kalman filters (more in the plugin catalog issue)."""

from venom.plugins.estimators.kalman import AdaptiveKalmanEstimator, KalmanConfig, KalmanEstimator
from venom.plugins.estimators.kalman_filter import AdaptiveKalmanFilter, KalmanFilter

__all__ = [
    "AdaptiveKalmanEstimator",
    "AdaptiveKalmanFilter",
    "KalmanConfig",
    "KalmanEstimator",
    "KalmanFilter",
]
