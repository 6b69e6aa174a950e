"""Guards: cusum, gate, dissonance, thermal, ber."""

from venom.plugins.guards.ber import BerConfig, BerGuard, ber_from_jitter
from venom.plugins.guards.cusum import CusumConfig, CusumGuard
from venom.plugins.guards.dissonance import DissonanceConfig, DissonanceGuard, delta_e
from venom.plugins.guards.gate import Bounds, GateConfig, GateGuard, gate_score
from venom.plugins.guards.thermal import ThermalConfig, ThermalGuard

__all__ = [
    "BerConfig",
    "BerGuard",
    "Bounds",
    "CusumConfig",
    "CusumGuard",
    "DissonanceConfig",
    "DissonanceGuard",
    "GateConfig",
    "GateGuard",
    "ThermalConfig",
    "ThermalGuard",
    "ber_from_jitter",
    "delta_e",
    "gate_score",
]
