"""Guards: cusum, gate, dissonance, thermal (more in the plugin catalog issue)."""

from venom.plugins.guards.cusum import CusumConfig, CusumGuard
from venom.plugins.guards.dissonance import DissonanceConfig, DissonanceGuard, delta_e
from venom.plugins.guards.gate import Bounds, GateConfig, GateGuard, gate_score
from venom.plugins.guards.thermal import ThermalConfig, ThermalGuard

__all__ = [
    "Bounds",
    "CusumConfig",
    "CusumGuard",
    "DissonanceConfig",
    "DissonanceGuard",
    "GateConfig",
    "GateGuard",
    "ThermalConfig",
    "ThermalGuard",
    "delta_e",
    "gate_score",
]
