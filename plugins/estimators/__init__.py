"""Estimators: Kalman filters, stability, flow, correlation, coherence."""

from venom.plugins.estimators.coherence import (
    CoherenceConfig,
    CoherenceEstimator,
    global_coherence,
    mst_edges,
    rcf_matrix,
)
from venom.plugins.estimators.correlation import (
    CorrelationConfig,
    CorrelationEstimator,
    pearson,
)
from venom.plugins.estimators.flow import FlowConfig, FlowEstimator, flow
from venom.plugins.estimators.kalman import AdaptiveKalmanEstimator, KalmanConfig, KalmanEstimator
from venom.plugins.estimators.kalman_filter import AdaptiveKalmanFilter, KalmanFilter
from venom.plugins.estimators.stability import (
    StabilityConfig,
    StabilityEstimator,
    spectral_abscissa,
    spectral_radius,
)

__all__ = [
    "AdaptiveKalmanEstimator",
    "AdaptiveKalmanFilter",
    "CoherenceConfig",
    "CoherenceEstimator",
    "CorrelationConfig",
    "CorrelationEstimator",
    "FlowConfig",
    "FlowEstimator",
    "KalmanConfig",
    "KalmanEstimator",
    "KalmanFilter",
    "StabilityConfig",
    "StabilityEstimator",
    "flow",
    "global_coherence",
    "mst_edges",
    "pearson",
    "rcf_matrix",
    "spectral_abscissa",
    "spectral_radius",
]
