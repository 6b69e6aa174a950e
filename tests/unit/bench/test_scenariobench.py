"""`venom bench scenario`'s judge: detection, calm, temperature, AUC, missing (issue 12)."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import msgspec
import pytest

from venom.daemon.bench.scenario import DETECTION_BEATS, auc, format_scenario_results, judge
from venom.daemon.config.settings import RunConfig, VenomConfig
from venom.daemon.service.simulate import simulate
from venom.plugins.sensors.scenario import load_scenario


def brute_auc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_auc_is_the_mann_whitney_statistic_with_ties() -> None:
    rng = random.Random(3)
    for _ in range(20):
        labels = [rng.randint(0, 1) for _ in range(200)]
        scores = [round(rng.random() + 0.3 * y, 1) for y in labels]  # many ties
        assert auc(scores, labels) == pytest.approx(brute_auc(scores, labels))
    assert auc([0.1, 0.9], [0, 1]) == 1.0
    assert auc([0.9, 0.1], [0, 1]) == 0.0


def test_the_documented_bounds_cover_the_default_scenario() -> None:
    kinds = {d.kind for d in load_scenario("default").disturbance}
    assert kinds == set(DETECTION_BEATS)
    # docs/catalog.md documents the same bounds, in its calibration table.
    rows = {
        line.split("|")[1].strip().split(",")[0].replace(" ", "_"): int(line.split("|")[3])
        for line in Path("docs/catalog.md").read_text().splitlines()
        if line.startswith("| ") and ", beat " in line
    }
    assert rows == DETECTION_BEATS


def test_judging_a_simulated_run_past_the_thermal_spike(tmp_path: Path) -> None:
    config = VenomConfig(run=RunConfig(live=False, scenario="default"))
    config = msgspec.structs.replace(
        config, beat=msgspec.structs.replace(config.beat, period=0.0, seed=0)
    )
    sim = anyio.run(simulate, config, 460, tmp_path)
    figures = judge(sim.records, "default")
    spike = figures["detection"]["thermal_spike@400"]
    assert spike["beats"] is not None
    assert 1 <= spike["beats"] < spike["bound"]
    # Later disturbances are beyond this run: not flagged, so the target is missed.
    assert figures["detection"]["jitter_burst@900"]["beats"] is None
    assert figures["targets"]["detection"] is False
    assert figures["beats"] == 460
    assert figures["max_temperature_c"] < 85
    assert figures["missing_share"] == 0.0
    assert figures["targets"]["missing"] is True
    figures.update(scenario="default", seed=0, period_ms=0.0, missed_ticks=0, wall_s=1.0)
    text = format_scenario_results(figures)
    assert "MISS every disturbance flagged" in text
    assert "thermal_spike@400" in text
