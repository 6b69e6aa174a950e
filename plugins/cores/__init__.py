"""The four decision cores: R (repair), B (balance), E (entropy), O (optimize)."""

from venom.plugins.cores.balance import BalanceConfig, BalanceCore
from venom.plugins.cores.entropy import EntropyConfig, EntropyCore
from venom.plugins.cores.optimize import OptimizeConfig, OptimizeCore
from venom.plugins.cores.regen import RegenConfig, RegenCore

__all__ = [
    "BalanceConfig",
    "BalanceCore",
    "EntropyConfig",
    "EntropyCore",
    "OptimizeConfig",
    "OptimizeCore",
    "RegenConfig",
    "RegenCore",
]
