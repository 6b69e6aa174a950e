"""cusum and gate guards: detection delay, bounds, L∞ score."""

from __future__ import annotations

import math
import random

import pytest

from venom.plugins.guards import (
    BerConfig,
    BerGuard,
    Bounds,
    CusumConfig,
    CusumGuard,
    DissonanceConfig,
    DissonanceGuard,
    GateConfig,
    GateGuard,
    ThermalConfig,
    ThermalGuard,
    ber_from_jitter,
    delta_e,
    gate_score,
)
from venom.plugins.sdk import validate_plugin
from venom.schemas import ConfigError, GuardVerdict, Pulse, PulseContext

pytestmark = pytest.mark.anyio


def pulse(beat: int, estimates: dict[str, float] | None = None, **features: float) -> Pulse:
    return Pulse(
        beat=beat,
        issued_at=0.0,
        deadline=1.0,
        t_lambda=0.004,
        seed=beat,
        features=features,
        context=PulseContext(estimates=estimates or {}),
    )


def test_guards_are_valid_plugins() -> None:
    assert validate_plugin(CusumGuard) is CusumGuard
    assert validate_plugin(GateGuard) is GateGuard
    assert validate_plugin(DissonanceGuard) is DissonanceGuard
    assert validate_plugin(ThermalGuard) is ThermalGuard


@pytest.mark.parametrize("delta", [1.0, 2.0, 4.0])
def test_cusum_detects_a_step_within_the_textbook_delay(delta: float) -> None:
    cfg = CusumConfig(warmup=200, k=0.5, h=5.0)
    rng = random.Random(7)
    guard = CusumGuard(cfg)
    for _ in range(200):
        guard.observe(10.0 + rng.gauss(0, 1))
    sigma, mu = guard.sigma, guard.mu
    for _ in range(200):  # in control: no alarm
        assert not guard.observe(mu + rng.gauss(0, 1) * 0.3)
    delay = None
    for n in range(1, 100):
        if guard.observe(mu + delta * sigma + rng.gauss(0, 1) * 0.3 * sigma):
            delay = n
            break
    bound = math.ceil(cfg.h / (delta - cfg.k)) + 2
    assert delay is not None
    assert delay <= bound, (delta, delay, bound)
    assert guard.events == 1


def test_cusum_catches_a_downward_shift_and_clears_after_it() -> None:
    guard = CusumGuard(CusumConfig(warmup=10, k=0.5, h=3.0))
    for i in range(10):
        guard.observe(5.0 + (0.1 if i % 2 else -0.1))
    for _ in range(5):
        alarmed = guard.observe(4.0)
    assert alarmed
    assert guard.s_lo > guard.s_hi
    for _ in range(200):
        alarmed = guard.observe(5.0)
    assert not alarmed
    assert guard.events == 1


async def test_cusum_verdicts() -> None:
    guard = CusumGuard(CusumConfig(signal="kalman.nis", warmup=5, h=2.0))
    for b in range(1, 6):
        v = await guard.handle(pulse(b, estimates={"kalman.nis": 1.0 + 0.01 * b}))
        assert isinstance(v, GuardVerdict)
        assert v.allow
    for b in range(6, 12):
        v = await guard.handle(pulse(b, estimates={"kalman.nis": 9.0}))
    assert isinstance(v, GuardVerdict)
    assert not v.allow
    assert "shifted up" in v.reason
    missing = await CusumGuard().handle(pulse(1))
    assert isinstance(missing, GuardVerdict)
    assert missing.allow
    assert "not measured" in missing.reason


def test_gate_score_is_the_l_infinity_norm_of_normalised_violations() -> None:
    bounds = {"a": Bounds(low=0.0, high=10.0), "b": Bounds(low=1.0, high=2.0)}
    assert gate_score({"a": 5.0, "b": 1.5}, bounds) == (0.0, "")
    assert gate_score({"a": 12.0, "b": 1.5}, bounds) == (pytest.approx(0.2), "a")
    assert gate_score({"a": 12.0, "b": 0.5}, bounds) == (pytest.approx(0.5), "b")
    assert gate_score({"a": 12.0, "b": None}, bounds) == (1.0, "b")


async def test_gate_is_non_compensatory_and_missing_fails() -> None:
    gate = GateGuard(
        GateConfig(bounds={"t": Bounds(low=0.0, high=80.0), "c": Bounds(low=0.5, high=1.0)})
    )
    ok = await gate.handle(pulse(1, t=40.0, c=0.9))
    assert isinstance(ok, GuardVerdict)
    assert ok.allow
    # Perfect coherence does not buy back a hot plant.
    hot = await gate.handle(pulse(2, t=90.0, c=1.0))
    assert isinstance(hot, GuardVerdict)
    assert not hot.allow
    assert hot.severity == "warning"
    assert hot.metric == pytest.approx(10 / 80)
    gone = await gate.handle(pulse(3, t=40.0))
    assert isinstance(gone, GuardVerdict)
    assert (gone.allow, gone.reason) == (False, "c missing")
    way_off = await gate.handle(pulse(4, t=200.0, c=0.9))
    assert isinstance(way_off, GuardVerdict)
    assert way_off.severity == "critical"


async def test_dissonance_learns_its_reference_and_vetoes_critically() -> None:
    guard = DissonanceGuard(DissonanceConfig(features=("a", "b"), warmup=10))
    for b in range(1, 11):
        v = await guard.handle(pulse(b, a=1.0, b=0.02 * (b % 3)))
        assert isinstance(v, GuardVerdict)
        assert v.allow
    near = await guard.handle(pulse(11, a=2.0, b=0.05))
    assert isinstance(near, GuardVerdict)
    assert near.allow
    assert near.metric < 0.05
    # 20° off the reference: ΔE = sin²(20°) ≈ 0.117 > 0.05 → critical.
    angle = math.radians(20)
    far = await guard.handle(pulse(12, a=math.cos(angle), b=math.sin(angle)))
    assert isinstance(far, GuardVerdict)
    assert (far.allow, far.severity) == (False, "critical")
    ref = guard.ref
    assert ref is not None
    expected = 1 - (math.cos(angle) * ref[0] + math.sin(angle) * ref[1]) ** 2
    assert far.metric == pytest.approx(expected)


def test_delta_e_of_unit_vectors() -> None:
    assert delta_e([1.0, 0.0], [1.0, 0.0]) == 0.0
    assert delta_e([0.0, 1.0], [1.0, 0.0]) == 1.0
    assert delta_e([-1.0, 0.0], [1.0, 0.0]) == 0.0  # global phase: |⟨ψ, ref⟩|²
    s = math.sqrt(0.5)
    assert delta_e([s, s], [1.0, 0.0]) == pytest.approx(0.5)


async def test_dissonance_with_a_configured_reference() -> None:
    guard = DissonanceGuard(DissonanceConfig(features=("a", "b"), reference=(0.0, 3.0)))
    v = await guard.handle(pulse(1, a=1.0, b=0.0))
    assert isinstance(v, GuardVerdict)
    assert not v.allow
    with pytest.raises(ConfigError, match="reference: reference has 1 values for 2 features"):
        DissonanceGuard(DissonanceConfig(features=("a", "b"), reference=(1.0,)))


async def test_thermal_forecast_advice_and_optimize_block() -> None:
    guard = ThermalGuard()
    verdicts = []
    for b, t in enumerate([50.0, 52.0, 54.0, 56.0, 58.0, 60.0], start=1):
        verdicts.append(await guard.handle(pulse(b, **{"plant.temperature": t})))
    last = verdicts[-1]
    assert isinstance(last, GuardVerdict)
    assert last.metric == pytest.approx(70.0)  # 60 + 2 per beat x 5 beats
    assert last.recommend == "medium"
    assert last.blocks == ["OPTIMIZE"]
    assert last.allow
    first = verdicts[0]
    assert isinstance(first, GuardVerdict)
    assert (first.recommend, first.blocks) == ("", [])
    for b, t in enumerate([80.0, 84.0], start=7):
        v = await guard.handle(pulse(b, **{"plant.temperature": t}))
    assert isinstance(v, GuardVerdict)
    assert not v.allow
    assert v.recommend == "high"
    with pytest.raises(ConfigError, match="medium: the thresholds"):
        ThermalGuard(ThermalConfig(low=90.0))


def test_ber_surrogate() -> None:
    assert ber_from_jitter(0.0) == 0.0
    # Q = 0.5 / σ; σ = 0.1 UI → Q = 5 → BER = ½·erfc(5/√2) ≈ 2.87e-7.
    assert ber_from_jitter(0.1) == pytest.approx(0.5 * math.erfc(5 / math.sqrt(2)))
    assert ber_from_jitter(0.1) == pytest.approx(2.866e-7, rel=1e-3)
    assert ber_from_jitter(0.05) < ber_from_jitter(0.1) < ber_from_jitter(0.2)


async def test_ber_throttles_only_after_three_violations_and_adapts() -> None:
    assert validate_plugin(BerGuard) is BerGuard
    guard = BerGuard(BerConfig(tier="bronze", relax_after=5))
    bad, good = {"plant.jitter": 0.2}, {"plant.jitter": 0.05}
    verdicts = [await guard.handle(pulse(b, **bad)) for b in range(1, 5)]
    allows = [v.allow for v in verdicts if isinstance(v, GuardVerdict)]
    assert allows == [True, True, False, False]
    last = verdicts[-1]
    assert isinstance(last, GuardVerdict)
    assert last.blocks == ["OPTIMIZE"]
    ok = await guard.handle(pulse(5, **good))
    assert isinstance(ok, GuardVerdict)
    assert ok.allow
    assert guard.factor == 0.5  # tightened after the episode
    for b in range(6, 11):
        await guard.handle(pulse(b, **good))
    assert guard.factor == pytest.approx(0.625)  # loosened after 5 clean beats
    # Two violations and a clean beat: no throttle.
    for b, f in enumerate([bad, bad, good], start=11):
        v = await guard.handle(pulse(b, **f))
        assert isinstance(v, GuardVerdict)
        assert v.allow
    with pytest.raises(ConfigError, match="tier: 'platinum' is not one of the tiers"):
        BerGuard(BerConfig(tier="platinum"))


async def test_thermal_vetoes_an_unexplained_rise_long_before_the_limit() -> None:
    guard = ThermalGuard(ThermalConfig(max_rise=0.3, window=10))
    temps = [60.0 + 0.1 * i for i in range(10)] + [61.0 + 0.5 * i for i in range(1, 8)]
    verdicts = [
        await guard.handle(pulse(b, **{"plant.temperature": t})) for b, t in enumerate(temps, 1)
    ]
    allowed = [v.allow for v in verdicts if isinstance(v, GuardVerdict)]
    assert all(allowed[:10])  # 0.1 °C/beat: normal
    assert not allowed[-1]  # the least-squares slope passed 0.3 °C/beat
    last = verdicts[-1]
    assert isinstance(last, GuardVerdict)
    assert "heating at" in last.reason
    assert max(temps) < 70.0  # nowhere near the 85 °C limit
    off = ThermalGuard(ThermalConfig(max_rise=0.0))
    assert all(
        [
            (await off.handle(pulse(b, **{"plant.temperature": t}))).allow
            for b, t in enumerate(temps, 1)
        ]  # type: ignore[union-attr]
    )


def test_cusum_clears_a_bounded_time_after_a_huge_shift() -> None:
    cfg = CusumConfig(warmup=100, k=0.5, h=5.0, cap=2.0)
    guard = CusumGuard(cfg)
    rng = random.Random(3)
    for _ in range(100):
        guard.observe(rng.gauss(0.0, 1.0))
    assert any(guard.observe(1000.0) for _ in range(50))  # a shift of 1000 σ
    # Back to normal: the capped sum (2h) falls by about k per beat, so it is
    # below h again within (cap − 1)·h/k = 10 beats plus the noise.
    cleared = next(i for i in range(1, 100) if not guard.observe(rng.gauss(0.0, 1.0)))
    assert cleared <= 15
