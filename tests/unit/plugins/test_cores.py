"""The four cores, fed crafted pulses."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import msgspec
import pytest

from venom.plugins.cores import (
    BalanceConfig,
    BalanceCore,
    EntropyConfig,
    EntropyCore,
    OptimizeConfig,
    OptimizeCore,
    RegenConfig,
    RegenCore,
)
from venom.plugins.cores.stats import Rolling
from venom.plugins.sdk import Plugin, validate_plugin
from venom.schemas import Anomaly, CoreReply, PluginValidationError, Pulse, PulseContext

pytestmark = pytest.mark.anyio

CORES: tuple[type[Plugin[Any]], ...] = (RegenCore, BalanceCore, EntropyCore, OptimizeCore)


def pulse(beat: int, features: dict[str, float] | None = None, **ctx: Any) -> Pulse:
    return Pulse(
        beat=beat,
        issued_at=0.0,
        deadline=1.0,
        t_lambda=0.004,
        seed=beat,
        features=features or {},
        context=PulseContext(**ctx),
    )


async def score(core: Plugin[Any], p: Pulse) -> CoreReply:
    reply = await core.handle(p)
    assert isinstance(reply, CoreReply)
    assert math.isfinite(reply.score)
    assert 0.0 <= reply.score <= 1.0
    assert all(math.isfinite(v) for v in reply.details.values()), reply.details
    return reply


async def feed(core: Plugin[Any], pulses: list[Pulse]) -> CoreReply:
    """Every pulse in turn; the last reply."""
    replies = [await score(core, p) for p in pulses]
    return replies[-1]


def test_every_core_is_a_valid_plugin() -> None:
    names: dict[str, type[Any]] = {}
    for cls in CORES:
        assert validate_plugin(cls) is cls
        assert cls.role == "core"
        assert cls.version == "1.0.0"
        assert cls.description
        names[cls.name] = cls.config_type
    assert set(names) == {"regen-core", "balance-core", "entropy-core", "optimize-core"}


@pytest.mark.parametrize(
    ("cls", "bad"),
    [
        (RegenCore, {"w_down": -1.0}),
        (RegenCore, {"window": 0}),
        (BalanceCore, {"warmup": 1}),
        (EntropyCore, {"alpha": 1.5}),
        (OptimizeCore, {"w_stability": 2.0}),
        (OptimizeCore, {"no_such_key": 1}),
    ],
)
def test_configs_are_checked(cls: type[Plugin[Any]], bad: dict[str, Any]) -> None:
    with pytest.raises(PluginValidationError):
        cls.decode_config(bad)


def test_config_defaults() -> None:
    assert EntropyConfig().alpha == 0.05
    assert EntropyConfig().warmup == 20
    assert EntropyConfig().z_threshold == 3.0
    b = BalanceConfig()
    assert (b.kp, b.ki, b.kd) == (0.6, 0.1, 0.05)
    assert RegenConfig().window > 0
    assert OptimizeConfig().throughput[0] == "plant.throughput"


# --- E ---------------------------------------------------------------------------------------


async def test_entropy_constant_stream_is_no_threat() -> None:
    core = EntropyCore()
    for b in range(1, 101):
        r = await score(core, pulse(b, {"x": 5.0, "zero": 0.0}))
        assert r.score == 0.0
        assert r.details["anomalies"] == 0.0


async def test_entropy_flags_a_spike_with_the_spec_formula() -> None:
    core = EntropyCore()
    rng = random.Random(1)
    for b in range(1, 101):
        r = await score(core, pulse(b, {"plant.temperature": 40 + rng.gauss(0, 0.1)}))
    assert r.score == 0.0
    r = await score(core, pulse(101, {"plant.temperature": 41.0}))  # 10 sigma
    assert r.details["anomalies"] == 1.0
    assert r.score == 1 - math.exp(-1 / 3)
    assert r.notes == ["plant.temperature"]
    assert r.details["z.plant.temperature"] > 3
    assert r.details["max_z"] == r.details["z.plant.temperature"]


async def test_entropy_nothing_before_warmup() -> None:
    core = EntropyCore(EntropyConfig(warmup=20))
    for b in range(1, 20):
        r = await score(core, pulse(b, {"x": float(b % 2) * 1e6}))
        assert r.score == 0.0


async def test_entropy_sustained_shift_stays_visible_then_fades() -> None:
    core = EntropyCore()
    rng = random.Random(2)
    for b in range(1, 101):
        await score(core, pulse(b, {"x": rng.gauss(0, 1)}))
    flagged = [
        (await score(core, pulse(100 + b, {"x": 10.0}))).details["features"] for b in range(1, 200)
    ]
    assert flagged[:5] == [1.0] * 5  # not learned away at once
    assert flagged[-1] == 0.0  # but learned in the end


async def test_entropy_mesh_anomalies_add_up() -> None:
    core = EntropyCore()
    for b in range(1, 40):
        await score(core, pulse(b, {"x": 1.0 + (b % 3) * 0.01}))
    mesh = [Anomaly(source="a", beats=3), Anomaly(source="b")]
    r = await score(core, pulse(40, {"x": 100.0}, anomalies=mesh))
    assert r.details["anomalies"] == 3.0
    assert r.details["mesh"] == 2.0
    assert r.score == 1 - math.exp(-3 / 3)
    only_mesh = await score(EntropyCore(), pulse(1, anomalies=mesh))
    assert only_mesh.score == 1 - math.exp(-2 / 3)


async def test_entropy_ignores_the_arbiters_own_counts() -> None:
    core = EntropyCore()
    for b in range(1, 40):
        r = await score(core, pulse(b, {"arbiter.missing": 0.0 if b < 39 else 1e9}))
    assert r.score == 0.0


async def test_entropy_floors_a_zero_variance() -> None:
    core = EntropyCore()
    for b in range(1, 40):
        await score(core, pulse(b, {"x": 5.0}))
    tiny = await score(core, pulse(40, {"x": 5.0 + 1e-9}))
    assert tiny.score == 0.0
    big = await score(core, pulse(41, {"x": 6.0}))
    assert big.details["anomalies"] == 1.0


async def test_entropy_new_feature_warms_up_on_its_own() -> None:
    core = EntropyCore()
    for b in range(1, 40):
        await score(core, pulse(b, {"x": 1.0}))
    r = await score(core, pulse(40, {"x": 1.0, "late": 1e6}))
    assert r.score == 0.0


def reference_entropy(cfg: EntropyConfig, pulses: list[Pulse]) -> list[dict[str, float]]:
    """EntropyCore's rule as its docstring states it, one feature at a time."""
    baselines: dict[str, list[float]] = {}  # mean, var, count
    out = []
    for p in pulses:
        details: dict[str, float] = {"max_z": 0.0}
        found = 0
        for key, value in p.features.items():
            if not math.isfinite(value) or key.startswith(cfg.ignore_prefixes):
                continue
            mean, var, count = baselines.setdefault(key, [0.0, 0.0, 0])
            alpha = cfg.alpha
            if count >= cfg.warmup:
                std = max(math.sqrt(var), cfg.rel_floor * abs(mean), cfg.abs_floor)
                z = (value - mean) / std
                details["max_z"] = max(details["max_z"], abs(z))
                if abs(z) > cfg.z_threshold:
                    found += 1
                    details[f"z.{key}"] = z
                    value = mean + math.copysign(cfg.z_threshold * std, z)
                    alpha = cfg.anomaly_alpha
            weight = max(alpha, 1.0 / (count + 1))
            diff = value - mean
            baselines[key] = [
                mean + weight * diff,
                (1.0 - weight) * (var + diff * weight * diff),
                count + 1,
            ]
        anomalies = found + len(p.context.anomalies)
        details |= {"features": float(found), "anomalies": float(anomalies)}
        details["score"] = 1.0 - math.exp(-anomalies / 3.0)
        out.append(details)
    return out


@pytest.mark.parametrize("settings", [{}, {"warmup": 2, "anomaly_alpha": 0.0, "z_threshold": 1.0}])
async def test_entropy_matches_the_reference_computation(settings: dict[str, Any]) -> None:
    cfg = msgspec.convert(settings, EntropyConfig)
    rng = random.Random(15)
    pulses = wandering(rng, 260)
    for b in (120, 121, 122, 200):  # steps and spikes
        pulses[b] = msgspec.structs.replace(
            pulses[b], features={**pulses[b].features, "plant.y0": 50.0}
        )
    core = EntropyCore(cfg)
    replies = [await score(core, p) for p in pulses]
    assert any(r.details["features"] for r in replies)
    for got, want in zip(replies, reference_entropy(cfg, pulses), strict=True):
        assert got.score == pytest.approx(want.pop("score"), rel=1e-12)
        assert sorted(got.notes) == got.notes == sorted(k[2:] for k in want if k[:2] == "z.")
        assert {k: got.details[k] for k in want} == pytest.approx(want, rel=1e-12)


# --- B ---------------------------------------------------------------------------------------


async def test_balance_is_stable_during_warmup() -> None:
    core = BalanceCore()
    rng = random.Random(3)
    for b in range(1, 10):
        r = await score(core, pulse(b, {"y": rng.gauss(0, 100)}))
        assert r.score == 1.0
        assert r.details["samples"] == 0.0


async def test_balance_stable_vs_noisy() -> None:
    calm, noisy = BalanceCore(), BalanceCore()
    rng = random.Random(4)
    for b in range(1, 80):
        rc = await score(calm, pulse(b, {"plant.y0": 10.0 + rng.gauss(0, 0.001)}))
        rn = await score(noisy, pulse(b, {"plant.y0": 10.0 + rng.gauss(0, 2.0)}))
    assert rc.score > 0.95
    assert rn.score < 0.5
    assert rn.details["volatility"] > rc.details["volatility"]
    assert rc.details["from_innovations"] == 0.0
    assert rc.details["samples"] == 50.0


async def test_balance_feature_units_do_not_matter() -> None:
    small, large = BalanceCore(), BalanceCore()
    rng = random.Random(5)
    for b in range(1, 80):
        v = 10.0 + rng.gauss(0, 1.0)
        rs = await score(small, pulse(b, {"y": v}))
        rl = await score(large, pulse(b, {"y": v * 1024.0}))
    assert rs.score == pytest.approx(rl.score, rel=1e-9)


async def test_balance_median_is_not_swayed_by_one_noisy_feature() -> None:
    core = BalanceCore()
    rng = random.Random(6)
    for b in range(1, 80):
        features = {f"calm{i}": 5.0 + rng.gauss(0, 0.001) for i in range(4)}
        features["count"] = float(rng.randrange(0, 5))
        r = await score(core, pulse(b, features))
    assert r.score > 0.95
    assert r.details["series"] == 5.0


async def test_balance_prefers_innovations() -> None:
    core = BalanceCore()
    rng = random.Random(7)
    for b in range(1, 40):
        r = await score(
            core,
            pulse(b, {"plant.y0": 1.0}, estimates={"kalman.innovation_0": rng.gauss(0, 3)}),
        )
    assert r.details["from_innovations"] == 1.0
    assert r.score < 0.5  # the steady feature alone would say 1.0


async def test_balance_judges_nis_per_measurement_dimension() -> None:
    rng = random.Random(8)

    def estimates(excess: float) -> dict[str, float]:
        nu = [rng.gauss(0, 1) for _ in range(3)]
        values = {f"kalman.innovation_{i}": v * 100 for i, v in enumerate(nu)}
        values["kalman.nis"] = excess * sum(v * v for v in nu)  # chi-square(3) when consistent
        return values

    consistent, surprised = BalanceCore(), BalanceCore()
    for b in range(1, 60):
        rc = await score(consistent, pulse(b, estimates=estimates(1.0)))
        rs = await score(surprised, pulse(b, estimates=estimates(4.0)))
    assert rc.score > 0.75  # huge raw innovations, but as the filter expects
    assert rs.score < 0.4
    assert rs.details["kp"] < rc.details["kp"]


async def test_balance_recommends_bounded_gains() -> None:
    core = BalanceCore()
    rng = random.Random(9)
    for b in range(1, 60):
        r = await score(core, pulse(b, estimates={"kalman.innovation_0": rng.gauss(0, 1e3)}))
    cfg = BalanceConfig()
    assert r.score < cfg.min_gain_scale
    assert r.details["kp"] == pytest.approx(cfg.kp * cfg.min_gain_scale)
    assert r.details["ki"] == pytest.approx(cfg.ki * cfg.min_gain_scale)
    assert r.details["kd"] == pytest.approx(cfg.kd * cfg.min_gain_scale)
    calm = await score(BalanceCore(), pulse(1))
    assert (calm.details["kp"], calm.details["ki"], calm.details["kd"]) == (0.6, 0.1, 0.05)


async def test_balance_drops_an_estimator_gone_quiet() -> None:
    core = BalanceCore()
    rng = random.Random(10)
    for b in range(1, 40):
        await score(core, pulse(b, {"y": 1.0}, estimates={"kalman.innovation_0": rng.gauss(0, 9)}))
    for b in range(40, 100):
        r = await score(core, pulse(b, {"y": 1.0}))
    assert r.details["from_innovations"] == 0.0
    assert r.score == 1.0


async def test_balance_ignores_its_own_output_in_the_context() -> None:
    core = BalanceCore()
    rng = random.Random(11)
    for b in range(1, 40):
        r = await score(
            core,
            pulse(
                b,
                estimates={
                    "balance-core.innovation_x": rng.gauss(0, 9),
                    "entropy-core.max_z": rng.gauss(0, 9),
                },
            ),
        )
    assert r.score == 1.0
    assert r.details["from_innovations"] == 0.0


def reference_balance(cfg: BalanceConfig, pulses: list[Pulse]) -> list[dict[str, float]]:
    """BalanceCore's rule as its docstring states it, the slow, obvious way.

    Every window kept as a list and its statistics computed afresh each
    beat (``statistics.fmean`` and ``statistics.variance``, exact), no
    running sums, nothing cached between beats.
    """
    size = cfg.window
    series: dict[str, tuple[str, bool, list[float]]] = {}
    features: dict[str, tuple[float, float, list[float]]] = {}  # scale, previous, diffs
    last: dict[str, int] = {}
    out: list[dict[str, float]] = []
    for beat, p in enumerate(pulses, 1):
        for key, value in p.context.estimates.items():
            estimator, _, field = key.partition(".")
            if estimator == "balance-core" or not math.isfinite(value):
                continue
            if not field.startswith(("nis", "innovation")):
                continue
            entry = series.setdefault(key, (estimator, field.startswith("nis"), []))
            entry[2].append(min(1e12, max(-1e12, value)))
            del entry[2][:-size]
            last["s" + key] = beat
        for key, value in p.features.items():
            if not math.isfinite(value) or key.startswith(cfg.ignore_prefixes):
                continue
            scale, previous, diffs = features.get(key, (0.0, math.nan, []))
            scale = max(abs(value), (1.0 - cfg.scale_decay) * scale)
            if not math.isnan(previous):
                diffs = [*diffs, value / scale - previous / scale if scale > 0 else 0.0][-size:]
            features[key] = (scale, value, diffs)
            last["f" + key] = beat
        for key in [k for k in series if beat - last["s" + k] >= size]:
            del series[key]
        for key in [k for k in features if beat - last["f" + k] >= size]:
            del features[key]
        by_estimator: dict[str, list[tuple[bool, list[float]]]] = {}
        for estimator, is_nis, values in series.values():
            by_estimator.setdefault(estimator, []).append((is_nis, values))
        volatilities, samples = [], []
        for members in by_estimator.values():
            dim = sum(1 for is_nis, _ in members if not is_nis)
            warm = [(is_nis, v) for is_nis, v in members if len(v) >= cfg.warmup]
            samples += [len(v) for _, v in warm]
            nis = [statistics.fmean(v) for is_nis, v in warm if is_nis]
            innovations = [statistics.variance(v) for is_nis, v in warm if not is_nis]
            if nis:
                volatilities.append(max(0.0, statistics.fmean(nis) / max(1, dim) - 1.0))
            elif innovations:
                volatilities.append(statistics.fmean(innovations))
        if volatilities:
            volatility = statistics.fmean(volatilities)
            stability = 1.0 / (1.0 + cfg.innovation_sensitivity * volatility)
        else:
            warm_features = [d for _, _, d in features.values() if len(d) >= cfg.warmup]
            samples = [len(d) for d in warm_features]
            volatility = statistics.median([statistics.variance(d) for d in warm_features] or [0])
            stability = 1.0 / (1.0 + cfg.sensitivity * volatility)
        out.append(
            {
                "score": stability,
                "volatility": volatility,
                "samples": float(min(samples, default=0)),
                "series": float(len(samples)),
                "from_innovations": 1.0 if volatilities else 0.0,
            }
        )
    return out


def wandering(rng: random.Random, beats: int) -> list[Pulse]:
    """Estimators and features that come, go, come back, turn non-finite, jump."""
    pulses = []
    for b in range(1, beats + 1):
        estimates: dict[str, float] = {"kalman.x0": rng.gauss(0, 1)}
        if not 60 <= b < 90:  # kalman goes quiet for a while
            estimates |= {f"kalman.innovation_{i}": rng.gauss(0, 1) for i in range(3)}
            estimates["kalman.nis"] = rng.expovariate(1 / 3)
        if b % 7:
            estimates["flow.innovation"] = rng.gauss(0, 2) if b % 13 else math.nan
        if b > 150:
            estimates = {}  # no estimator at all: the features judge
        if rng.random() < 0.02:  # an outlier (not a huge one: running sums would cancel)
            estimates["flow.innovation"] = 60.0
        features = {f"plant.y{i}": 10.0 * i + rng.gauss(0, 1 + i) for i in range(4)}
        if 100 <= b < 130 or 140 <= b < 144 or 170 <= b < 175 or 180 <= b < 184:  # gone, back
            del features["plant.y3"]
        if b % 11 == 0:
            features["plant.y2"] = math.inf
        if b % 17 == 0:
            features["plant.y1"] = 0.0
        features["arbiter.rate"] = rng.gauss(240, 30)
        if rng.random() < 0.3:  # the same keys, another order
            features = dict(rng.sample(list(features.items()), len(features)))
        pulses.append(pulse(b, features, estimates=estimates))
    return pulses


@pytest.mark.parametrize(
    "settings", [{}, {"window": 5, "warmup": 3}, {"window": 20, "warmup": 30}, {"scale_decay": 0.0}]
)
async def test_balance_matches_the_reference_computation(settings: dict[str, Any]) -> None:
    cfg = msgspec.convert(settings, BalanceConfig)
    pulses = wandering(random.Random(14), 260)
    core = BalanceCore(cfg)
    replies = [await score(core, p) for p in pulses]
    reference = reference_balance(cfg, pulses)
    for beat, (got, want) in enumerate(zip(replies, reference, strict=True), 1):
        assert got.score == pytest.approx(want["score"], rel=1e-9, abs=1e-12), beat
        for key in ("volatility", "samples", "series", "from_innovations"):
            assert got.details[key] == pytest.approx(want[key], rel=1e-9, abs=1e-12), (beat, key)


# --- R ---------------------------------------------------------------------------------------


async def test_regen_urgency_rises_with_trouble() -> None:
    calm = await score(RegenCore(), pulse(1))
    failing = await score(RegenCore(), pulse(1, failing=["flow"]))
    down = await score(RegenCore(), pulse(1, down=["kalman"]))
    worse = await score(RegenCore(), pulse(1, down=["kalman", "cusum"], ledger_lag=500))
    assert calm.score == 0.0
    assert 0 < failing.score < down.score < worse.score < 1
    assert worse.notes == ["cusum", "kalman"]
    assert worse.details["cost"] == 2 * 50 + 500
    assert worse.details["ledger_lag"] == 500.0
    lagging = [(await score(RegenCore(), pulse(1, ledger_lag=n))).score for n in (0, 10, 100, 1000)]
    assert lagging == sorted(lagging)
    assert lagging[0] == lagging[1] == lagging[2] == 0.0  # within the allowance: healthy
    assert lagging[-1] == pytest.approx(1 - math.exp(-0.3 * 900 / 100))


async def test_regen_counts_distinct_failures_over_the_window() -> None:
    core = RegenCore(RegenConfig(window=5))
    r = await score(core, pulse(1, failing=["a"]))
    r = await score(core, pulse(2, failing=["b"]))
    assert r.details["failing"] == 2.0
    for b in range(3, 6):
        r = await score(core, pulse(b))
    assert r.notes == ["a", "b"]
    r = await score(core, pulse(6))  # a's failure at beat 1 left the window
    assert r.notes == ["b"]
    r = await score(core, pulse(7))
    assert r.notes == []
    assert r.score == 0.0


async def test_regen_counts_anomalies_and_own_failures() -> None:
    plain = await score(RegenCore(), pulse(1))
    mesh = await score(RegenCore(), pulse(1, anomalies=[Anomaly(source="op")]))
    own = await score(RegenCore(), pulse(1, {"arbiter.failed": 2.0, "arbiter.missing": 1.0}))
    assert plain.details["anomalies"] == 0.0
    assert mesh.details["anomalies"] == 1.0
    assert own.details["anomalies"] == 3.0
    assert 0 < mesh.score < own.score


async def test_regen_cost_uses_per_plugin_costs() -> None:
    core = RegenCore(RegenConfig(costs={"ledger": 200.0}, restart_beats=10.0, retry_beats=1.0))
    r = await score(core, pulse(1, down=["ledger", "kalman"], failing=["flow", "kalman"]))
    assert r.details["cost"] == 200 + 10 + 1  # kalman is down, not also failing
    assert r.details["down"] == 2.0
    assert r.details["failing"] == 1.0


async def test_regen_stays_bounded() -> None:
    many = [f"p{i}" for i in range(500)]
    r = await score(
        RegenCore(),
        pulse(1, {"arbiter.failed": 1e300}, down=many, failing=many, ledger_lag=2**62),
    )
    assert r.score == 1.0


# --- O ---------------------------------------------------------------------------------------


async def test_optimize_gain_from_a_rising_index() -> None:
    rising, flat, falling = OptimizeCore(), OptimizeCore(), OptimizeCore()
    for b in range(1, 40):
        rr = await score(rising, pulse(b, {"plant.throughput": 5.0}, stability=0.3 + 0.01 * b))
        rf = await score(flat, pulse(b, {"plant.throughput": 5.0}, stability=0.9))
        rd = await score(falling, pulse(b, {"plant.throughput": 5.0}, stability=0.9 - 0.01 * b))
    assert rr.score > 0.1
    assert rr.details["slope"] == pytest.approx(0.005)
    assert rf.score == 0.0
    assert rd.score == 0.0


async def test_optimize_gain_from_recovering_throughput() -> None:
    core = OptimizeCore()
    await score(core, pulse(1, {"plant.throughput": 100.0}))  # the maximum so far
    for b in range(2, 40):
        r = await score(core, pulse(b, {"plant.throughput": 40.0 + 1.5 * b}))
    assert r.score > 0.1
    assert 0.0 <= r.details["index"] <= 1.0


async def test_optimize_falls_back_to_the_arbiter_rate() -> None:
    core = OptimizeCore()
    await score(core, pulse(1, {"arbiter.rate": 240.0}))
    for b in range(2, 40):
        r = await score(core, pulse(b, {"arbiter.rate": 100.0 + 3.0 * b}))
    assert r.score > 0.1


async def test_optimize_no_gain_until_the_window_is_full() -> None:
    core = OptimizeCore(OptimizeConfig(window=30))
    for b in range(1, 30):
        r = await score(core, pulse(b, stability=0.01 * b))
        assert r.score == 0.0
    r = await score(core, pulse(30, stability=0.3))
    assert r.score > 0.0
    assert r.details["samples"] == 30.0


@pytest.mark.parametrize("window", [1, 3, 20])
async def test_regen_failing_is_the_union_over_the_window(window: int) -> None:
    rng = random.Random(16)
    core = RegenCore(RegenConfig(window=window))
    history: list[set[str]] = []
    for b in range(1, 200):
        p = trouble(rng, b)
        if b % 5 == 0:  # the same name twice in one beat counts once
            p = msgspec.structs.replace(
                p, context=msgspec.structs.replace(p.context, failing=["a", "a"])
            )
        history.append(set(p.context.failing))
        want = set().union(*history[-window:]) - set(p.context.down)
        r = await score(core, p)
        assert r.details["failing"] == float(len(want)), b
        assert r.notes == sorted(want | set(p.context.down)), b


def test_rolling_slope_is_the_least_squares_slope() -> None:
    rng = random.Random(17)
    rolling = Rolling(7)
    for step in range(40):
        rolling.push(rng.gauss(0, 10) + 0.5 * step)
        ys = list(rolling.values)
        n = len(ys)
        if n < 2:
            assert rolling.slope() == 0.0
            continue
        x_mean, y_mean = (n - 1) / 2, sum(ys) / n
        num = sum((i - x_mean) * (y - y_mean) for i, y in enumerate(ys))
        assert rolling.slope() == num / sum((i - x_mean) ** 2 for i in range(n))


# --- all -------------------------------------------------------------------------------------


def trouble(rng: random.Random, b: int) -> Pulse:
    """A pulse with a bit of everything, from ``rng``."""
    return pulse(
        b,
        {
            "plant.y0": rng.gauss(1, 0.1),
            "plant.throughput": rng.choice([0.0, 100.0, 120.0]),
            "arbiter.rate": rng.gauss(240, 5),
            "arbiter.failed": float(rng.randrange(2)),
        },
        stability=rng.random(),
        estimates={"kalman.innovation_0": rng.gauss(0, 1), "kalman.nis": rng.expovariate(1)},
        failing=rng.sample(["a", "b", "c"], rng.randrange(3)),
        down=["d"] if b % 17 == 0 else [],
        anomalies=[Anomaly(source="op")] if b % 11 == 0 else [],
        ledger_lag=rng.randrange(10),
    )


@pytest.mark.parametrize("cls", CORES)
async def test_same_pulses_same_replies(cls: type[Plugin[Any]]) -> None:
    rng = random.Random(12)
    pulses = [trouble(rng, b) for b in range(1, 120)]
    one, two = cls(), cls()
    assert [await one.handle(p) for p in pulses] == [await two.handle(p) for p in pulses]


@pytest.mark.parametrize("cls", CORES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e308, -1e308])
async def test_extreme_values_never_leak(cls: type[Plugin[Any]], bad: float) -> None:
    core = cls()
    rng = random.Random(13)
    for b in range(1, 60):
        p = trouble(rng, b)
        if b % 2:
            p = msgspec.structs.replace(p, features=dict.fromkeys(p.features, bad))
        if b % 3:
            estimates = dict.fromkeys(p.context.estimates, bad)
            context = msgspec.structs.replace(p.context, stability=bad, estimates=estimates)
            p = msgspec.structs.replace(p, context=context)
        await score(core, p)
    await score(core, pulse(100))


@pytest.mark.parametrize("cls", CORES)
async def test_empty_pulses(cls: type[Plugin[Any]]) -> None:
    core = cls()
    for b in range(1, 80):
        r = await score(core, pulse(b))
    assert r.score == (1.0 if cls is BalanceCore else 0.0)
