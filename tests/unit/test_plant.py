"""The optical plant and its scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from venom.plugins.sdk import PluginContext, validate_plugin
from venom.plugins.sensors import BUILTIN, OpticalPlant, PlantConfig, load_scenario
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
