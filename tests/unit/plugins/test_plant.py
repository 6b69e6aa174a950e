"""The optical plant and its scenarios."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from venom.plugins.sdk import PluginContext, validate_plugin
from venom.plugins.sensors import BUILTIN, OpticalPlant, PlantConfig, load_scenario
from venom.plugins.sensors.beatrng import BeatRng, pcg64_state
from venom.schemas import Action, ConfigError, Label, Message, Pulse, PulseContext, Telemetry

pytestmark = pytest.mark.anyio


def pulse(beat: int, decision: Action = "STEADY", cooling: str = "") -> Pulse:
    return Pulse(
        beat=beat,
        issued_at=float(beat),
        deadline=float(beat) + 1,
        t_lambda=0.004,
        seed=1000 + beat,
        context=PulseContext(decision=decision, cooling=cooling),
    )


def plant(**kw: object) -> tuple[OpticalPlant, list[Label]]:
    labels: list[Label] = []

    async def publish(subject: str, message: Message) -> None:
        assert subject == "venom.mesh.label"
        assert isinstance(message, Label)
        labels.append(message)

    return OpticalPlant(PlantConfig(**kw), PluginContext(publish=publish)), labels  # type: ignore[arg-type]


def test_builtin_scenarios_load_and_bad_ones_are_named(tmp_path: Path) -> None:
    for name in BUILTIN:
        assert load_scenario(name).name == name
    assert len(load_scenario("default").disturbance) == 4
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[disturbance]]\nkind = "meteor"\nstart = 1\nduration = 1\n')
    with pytest.raises(ConfigError, match=r"meteor|kind"):
        load_scenario(str(bad))
    with pytest.raises(ConfigError, match="no scenario 'nowhere'"):
        load_scenario("nowhere")


async def test_same_seed_same_telemetry_and_labels() -> None:
    assert validate_plugin(OpticalPlant) is OpticalPlant
    (one, l1), (two, l2) = plant(), plant()
    a = [await one.handle(pulse(b)) for b in range(1, 500)]
    b = [await two.handle(pulse(b)) for b in range(1, 500)]
    assert a == b
    assert l1 == l2
    assert [x.label for x in l1[398:401]] == [0, 1, 1]  # the thermal spike starts at 400
    assert l1[420].kind == "thermal_spike"


async def test_heat_cooling_and_the_thermal_spike() -> None:
    p, _ = plant(scenario="calm")
    temps = []
    for b in range(1, 300):
        reply = await p.handle(pulse(b))
        assert isinstance(reply, Telemetry)
        temps.append(reply.values["temperature"])
    # First order towards where heat from throughput equals passive cooling,
    # 25 + 0.6 / 0.01 = 85 °C: T_n = 85 + (68 − 85)·0.99^n.
    assert temps[-1] == pytest.approx(85 + (68 - 85) * 0.99**299, abs=0.01)
    cooled, _ = plant(scenario="calm")
    for b in range(1, 300):
        reply = await cooled.handle(pulse(b, cooling="medium"))
    assert isinstance(reply, Telemetry)
    assert reply.values["temperature"] == pytest.approx(55 + (68 - 55) * 0.99**299, abs=0.01)
    spiked, _ = plant(scenario="default")
    for b in range(1, 461):
        reply = await spiked.handle(pulse(b, cooling="medium"))
    assert isinstance(reply, Telemetry)
    assert reply.values["temperature"] > 60.0  # +30 °C over the spike's 60 beats


async def test_quarantine_means_recovery_and_open_loop_ignores_it() -> None:
    closed, _ = plant(scenario="calm")
    reply = await closed.handle(pulse(1, decision="QUARANTINE"))
    assert isinstance(reply, Telemetry)
    assert (reply.values["recovery"], reply.values["throughput"]) == (1.0, 0.0)
    for b in range(2, 25):
        reply = await closed.handle(pulse(b))
    assert isinstance(reply, Telemetry)
    assert reply.values["recovery"] == 0.0
    opened, _ = plant(scenario="calm", apply_decisions=False)
    reply = await opened.handle(pulse(1, decision="QUARANTINE"))
    assert isinstance(reply, Telemetry)
    assert reply.values["recovery"] == 0.0
    boosted, _ = plant(scenario="calm")
    reply = await boosted.handle(pulse(1, decision="OPTIMIZE"))
    assert isinstance(reply, Telemetry)
    assert reply.values["throughput"] == pytest.approx(120.0)


async def test_sensor_dropout_and_jitter_burst() -> None:
    p, _ = plant(scenario="default")
    seen = {}
    for b in range(1, 1431):
        reply = await p.handle(pulse(b, cooling="medium"))
        assert isinstance(reply, Telemetry)
        seen[b] = reply.values
    assert "y0" in seen[1399]
    assert "y0" not in seen[1410]  # dropout 1400..1429
    assert seen[910]["jitter"] > seen[890]["jitter"] + 0.1  # burst 900..939
    assert seen[910]["ber"] > 1e-3 > seen[890]["ber"]


def test_beat_rng_draws_what_default_rng_draws() -> None:
    """Reseeding one Generator gives default_rng(seed)'s stream, for any seed size."""
    seeds = [0, 1, 2**32 - 1, 2**32, 2**53 - 1, 2**64 - 1, 2**64, 2**128 + 5, 2**200 + 12345]
    rng = random.Random(0)
    seeds += [rng.getrandbits(rng.choice([8, 32, 53, 64, 100, 128, 160])) for _ in range(2000)]
    beat = BeatRng()
    for seed in seeds:
        assert pcg64_state(seed) == tuple(np.random.PCG64(seed).state["state"].values())
    for seed in seeds[:300]:
        got, want = beat.reseed(seed), np.random.default_rng(seed)
        assert got.standard_normal(5).tolist() == want.standard_normal(5).tolist()
        assert got.poisson(3.5) == want.poisson(3.5)
        assert got.normal(0.0, 0.02, 3).tolist() == want.normal(0.0, 0.02, 3).tolist()


def test_normal_draws_are_scaled_standard_normals() -> None:
    """What the plant relies on to draw a beat's first normals in one call."""
    for seed in range(300):
        one, two = np.random.default_rng(seed), np.random.default_rng(seed)
        z = one.standard_normal(5).tolist()
        assert [0.0 + 0.01 * v for v in z[:3]] == two.normal(0.0, 0.01, 3).tolist()
        assert 0.0 + 0.002 * z[3] == two.normal(0.0, 0.002)
        assert 0.0 + 0.005 * z[4] == two.normal(0.0, 0.005)


async def test_the_run_is_the_one_the_numpy_plant_gave() -> None:
    """Telemetry and state, bit for bit, as the plant before its fast path (29b5e02) gave them.

    1,500 beats of the storm scenario with every decision and cooling level. The
    digest holds while numpy keeps the streams of PCG64, normal and poisson (it
    has since 1.17); if an upgrade changes them, re-record it from that numpy.
    """
    actions: tuple[Action, ...] = ("STEADY", "BALANCE", "OPTIMIZE", "QUARANTINE", "ALERT")
    p, _ = plant(scenario="storm")
    digest = hashlib.sha256()
    for b in range(1, 1501):
        decision = actions[b * 7 % 5] if b % 3 == 0 else "STEADY"
        reply = await p.handle(pulse(b, decision, ("", "low", "medium", "high")[b % 4]))
        assert isinstance(reply, Telemetry)
        digest.update(json.dumps([sorted(reply.values.items()), reply.state]).encode())
    assert digest.hexdigest() == "fd40996423ee61a8ab93fdaf4196ebda74090f56a6810f7f223d0695677754e9"
