"""Guards: cusum and gate (more in the plugin catalog issue)."""

from venom.plugins.guards.cusum import CusumConfig, CusumGuard
from venom.plugins.guards.gate import Bounds, GateConfig, GateGuard, gate_score

__all__ = ["Bounds", "CusumConfig", "CusumGuard", "GateConfig", "GateGuard", "gate_score"]
