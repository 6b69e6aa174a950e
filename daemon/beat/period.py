"""The pulse period T_Λ (SPEC 2.1).

    T_Λ(k, P, U) = T1 · ln(U) / (1 − 1/(k·P))      defined for k·P > 1

k = live decision cores, P = live nodes. With T1 = 1 ms and U = e⁴ the
default (k = 4, P = 5) is 4 ms / 0.95 ≈ 4.2105 ms.
"""

from __future__ import annotations

import math

from venom.daemon.config.settings import BeatConfig
from venom.schemas import ConfigError


def t_lambda(
    k: int, p: int, *, t1: float = 0.001, u: float = math.e**4, floor: float = 1e-6
) -> float:
    """T_Λ in seconds; ConfigError when k·P ≤ 1 (the formula is undefined there)."""
    if k < 0 or p < 0:
        raise ConfigError(f"k and P must be >= 0, got k={k}, P={p}", key="beat.k")
    if k * p <= 1:
        raise ConfigError(
            f"T_Λ needs k·P > 1 (k={k} cores, P={p} nodes gives k·P={k * p})", key="beat.k"
        )
    if t1 <= 0 or u <= 1:
        raise ConfigError(f"T_Λ needs T1 > 0 and U > 1, got T1={t1}, U={u}", key="beat.t1")
    return max(floor, t1 * math.log(u) / (1.0 - 1.0 / (k * p)))


def t_lambda_from(cfg: BeatConfig, k: int, p: int) -> float:
    """T_Λ with the constants of ``cfg``."""
    return t_lambda(k, p, t1=cfg.t1, u=cfg.u, floor=cfg.min_period)


def beat_period(cfg: BeatConfig, k: int, p: int | None, current: float | None) -> float:
    """The period a beat uses: ``beat.period`` if set, else T_Λ of the live cores and nodes.

    ``p`` is None before discovery has seen anyone (the configured k and P
    count then). With too few cores live for T_Λ (k·P ≤ 1) the current
    period stays (SPEC 2.1).
    """
    if cfg.period is not None:
        return cfg.period
    if p is None:
        k, p = cfg.k, cfg.p
    if k * p <= 1:
        return current if current is not None else t_lambda_from(cfg, cfg.k, cfg.p)
    return t_lambda_from(cfg, k, p)


def gather_deadline(cfg: BeatConfig, period: float) -> float:
    """Seconds a beat gathers for: ``beat.deadline``, or its share of the period."""
    if cfg.deadline is not None:
        return cfg.deadline
    if period == 0:
        return cfg.back_to_back_deadline
    return cfg.deadline_fraction * period
