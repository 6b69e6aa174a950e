"""Genome, genomic PID and T_Λ (issue 2, item 4)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venom.daemon.beat.genome import Genome
from venom.daemon.beat.period import t_lambda
from venom.daemon.beat.pid import GenomicPid
from venom.daemon.config.settings import GenomeConfig, PidConfig
from venom.schemas import ConfigError, Weights


def test_t_lambda_default_and_other_values() -> None:
    assert t_lambda(4, 5) == pytest.approx(0.004 / 0.95)  # 4.2105 ms
    assert t_lambda(4, 5) * 1e3 == pytest.approx(4.2105, abs=1e-4)
    assert t_lambda(2, 1) == pytest.approx(0.004 / 0.5)  # 8 ms
    assert t_lambda(16, 20) == pytest.approx(0.004 / (1 - 1 / 320))
    assert t_lambda(4, 5, t1=0.002, u=math.e**2) == pytest.approx(0.004 / 0.95)


@pytest.mark.parametrize(("k", "p"), [(1, 1), (0, 5), (1, 0), (-1, 5)])
def test_t_lambda_refuses_k_p_at_most_one(k: int, p: int) -> None:
    with pytest.raises(ConfigError, match="k"):
        t_lambda(k, p)


def test_t_lambda_floor() -> None:
    assert t_lambda(4, 5, t1=1e-12) == 1e-6


def test_pid_output_formula() -> None:
    pid = GenomicPid(PidConfig())
    s1 = pid.update(t_obs=0.03, dt=0.005)  # error 0.01
    assert s1.error == pytest.approx(0.01)
    assert s1.integral == pytest.approx(0.01 * 0.005)
    assert s1.derivative == 0.0  # first update
    assert s1.output == pytest.approx(0.6 * 0.01 + 0.1 * 0.00005)
    s2 = pid.update(t_obs=0.05, dt=0.005)  # error 0.03
    assert s2.derivative == pytest.approx((0.03 - 0.01) / 0.005)
    assert s2.integral == pytest.approx(0.00005 + 0.03 * 0.005)
    assert s2.output == pytest.approx(0.6 * 0.03 + 0.1 * s2.integral + 0.05 * 4.0)


def test_pid_anti_windup_clamps_the_integral() -> None:
    pid = GenomicPid(PidConfig())
    for _ in range(1000):
        state = pid.update(t_obs=10.0, dt=1.0)
    assert state.integral == 1.0
    for _ in range(1000):
        state = pid.update(t_obs=-10.0, dt=1.0)
    assert state.integral == -1.0


def test_pid_epsilon_reset() -> None:
    pid = GenomicPid(PidConfig())
    pid.update(t_obs=0.5, dt=0.1)
    assert pid.integral != 0.0
    state = pid.update(t_obs=0.02 + 5e-5, dt=0.1)  # |ΔT| < 1e-4
    assert state.integral == 0.0


def test_pid_stable_follows_lyapunov_over_the_window() -> None:
    pid = GenomicPid(PidConfig(window=10))
    for i in range(20):  # shrinking error → V falls
        state = pid.update(t_obs=0.02 + 0.1 / (i + 1), dt=0.005)
        assert state.stable
    for i in range(10):  # growing error → V rises over the window
        state = pid.update(t_obs=0.02 + 0.01 * (i + 1), dt=0.005)
    assert not state.stable


def test_genome_o_step_is_clamped() -> None:
    g = Genome(GenomeConfig())
    w = g.step(pid_output=10.0, threat=0.0, beat=1)
    # O: 0.25 + 0.05 = 0.30; total 1.05
    assert pytest.approx(0.30 / 1.05) == w.O
    assert pytest.approx(0.25 / 1.05) == w.R
    g = Genome(GenomeConfig())
    w = g.step(pid_output=-10.0, threat=0.0, beat=1)
    assert pytest.approx(0.20 / 0.95) == w.O


def test_genome_e_formula_when_threat_is_high() -> None:
    g = Genome(GenomeConfig())
    w = g.step(pid_output=0.0, threat=0.9, beat=10)
    e = 0.15 * 0.9 * math.exp(-10 / 50) * (1 - 0.25 / 0.3)
    total = 0.25 * 3 + e
    assert pytest.approx(e / total) == w.E
    assert pytest.approx(0.25 / total) == w.B
    # Not above 0.5: E untouched.
    g2 = Genome(GenomeConfig())
    assert pytest.approx(0.25) == g2.step(0.0, 0.5, 10).E


def test_genome_e_floored_when_o_exceeds_its_reference() -> None:
    g = Genome(GenomeConfig(R=0.1, B=0.1, E=0.1, O=0.7))
    w = g.step(pid_output=0.0, threat=1.0, beat=0)
    # 1 − O/0.3 < 0 → E = 0 → floored at 0.01 before normalising.
    total = 0.1 + 0.1 + 0.01 + 0.7
    assert pytest.approx(0.01 / total) == w.E


def test_genome_floor_and_normalisation() -> None:
    g = Genome(GenomeConfig())
    w = g.set(Weights(R=1.0, B=0.0, E=0.0, O=0.0))
    assert pytest.approx(0.01 / 1.03) == w.B
    assert pytest.approx(1.0, abs=1e-12) == w.R + w.B + w.E + w.O


@pytest.mark.parametrize("bad", [Weights(R=math.nan), Weights(R=-0.1), Weights(R=0, B=0, E=0, O=0)])
def test_genome_set_rejects_bad_weights(bad: Weights) -> None:
    with pytest.raises(ValueError, match="weight"):
        Genome().set(bad)


@given(
    steps=st.lists(
        st.tuples(st.floats(-1e6, 1e6), st.floats(0, 1), st.integers(0, 10**6)), max_size=50
    )
)
def test_genome_always_normalised_and_floored(steps: list[tuple[float, float, int]]) -> None:
    g = Genome()
    for out, threat, beat in steps:
        w = g.step(out, threat, beat)
        values = [w.R, w.B, w.E, w.O]
        assert sum(values) == pytest.approx(1.0, abs=1e-9)
        assert all(math.isfinite(v) and v > 0 for v in values)
