"""The four cores, fed crafted pulses."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from venom.plugins.cores import BalanceCore, EntropyCore, OptimizeCore, RegenCore
from venom.plugins.sdk import validate_plugin
from venom.schemas import Anomaly, CoreReply, Pulse, PulseContext

pytestmark = pytest.mark.anyio


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


async def score(core: Any, p: Pulse) -> CoreReply:
    reply = await core.handle(p)
    assert isinstance(reply, CoreReply)
    assert math.isfinite(reply.score)
    assert 0.0 <= reply.score <= 1.0
    return reply


def test_every_core_is_a_valid_plugin() -> None:
    for cls in (RegenCore, BalanceCore, EntropyCore, OptimizeCore):
        assert validate_plugin(cls) is cls


async def test_entropy_flags_a_spike_with_the_spec_formula() -> None:
    core = EntropyCore()
    rng = random.Random(1)
    for b in range(1, 101):
        r = await score(core, pulse(b, {"plant.temperature": 40 + rng.gauss(0, 0.1)}))
    assert r.score == 0.0
    r = await score(core, pulse(101, {"plant.temperature": 45.0}))  # ~50 sigma
    assert r.details["anomalies"] == 1.0
    assert r.score == pytest.approx(1 - math.exp(-1 / 3))
    assert r.notes == ["plant.temperature"]


async def test_entropy_counts_mesh_anomalies_and_ignores_own_counts() -> None:
    core = EntropyCore()
    mesh = [Anomaly(source="a"), Anomaly(source="b")]
    r = await score(core, pulse(1, {"arbiter.missing": 1e9}, anomalies=mesh))
    assert r.details["anomalies"] == 2.0
    assert r.score == pytest.approx(1 - math.exp(-2 / 3))


async def test_entropy_constant_feature_is_not_anomalous() -> None:
    core = EntropyCore()
    for b in range(1, 60):
        r = await score(core, pulse(b, {"x": 5.0}))
    assert r.score == 0.0


async def test_balance_stable_vs_noisy() -> None:
    calm, noisy = BalanceCore(), BalanceCore()
    rng = random.Random(2)
    for b in range(1, 80):
        rc = await score(calm, pulse(b, {"plant.y0": 10.0 + rng.gauss(0, 0.001)}))
        rn = await score(noisy, pulse(b, {"plant.y0": 10.0 + rng.gauss(0, 2.0)}))
    assert rc.score > 0.95
    assert rn.score < 0.5
    assert rn.details["kp"] < rc.details["kp"]


async def test_balance_prefers_innovations() -> None:
    core = BalanceCore()
    rng = random.Random(3)
    for b in range(1, 40):
        r = await score(
            core, pulse(b, {"plant.y0": 1.0}, estimates={"kalman.innovation_0": rng.gauss(0, 3)})
        )
    assert r.details["from_innovations"] == 1.0
    assert r.score < 0.5


async def test_regen_urgency_rises_with_trouble() -> None:
    calm = await score(RegenCore(), pulse(1))
    down = await score(RegenCore(), pulse(1, down=["kalman"]))
    worse = await score(RegenCore(), pulse(1, down=["kalman", "cusum"], ledger_lag=500))
    assert calm.score == 0.0
    assert 0 < down.score < worse.score < 1
    assert worse.notes == ["cusum", "kalman"]
    assert worse.details["cost"] == 2 * 50 + 500


async def test_optimize_gain_from_a_rising_index() -> None:
    rising, flat = OptimizeCore(), OptimizeCore()
    for b in range(1, 40):
        rr = await score(rising, pulse(b, {"plant.throughput": 100.0 * 1.01**b}))
        rf = await score(flat, pulse(b, {"plant.throughput": 5.0}))
    assert rr.score > 0.1
    assert rf.score == 0.0


async def test_same_pulses_same_replies() -> None:
    rng = random.Random(4)
    pulses = [pulse(b, {"a": rng.gauss(0, 1), "b": rng.random()}) for b in range(1, 80)]
    for cls in (RegenCore, BalanceCore, EntropyCore, OptimizeCore):
        one, two = cls(), cls()
        assert [await one.handle(p) for p in pulses] == [await two.handle(p) for p in pulses]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_non_finite_features_never_leak(bad: float) -> None:
    for cls in (RegenCore, BalanceCore, EntropyCore, OptimizeCore):
        core = cls()
        for b in range(1, 40):
            await score(core, pulse(b, {"x": bad, "plant.throughput": bad, "arbiter.failed": bad}))
        await score(core, pulse(41))


async def test_balance_ignores_its_own_output_in_the_context() -> None:
    core = BalanceCore()
    rng = random.Random(5)
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
