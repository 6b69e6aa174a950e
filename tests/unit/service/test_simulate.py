"""The loop in memory: the whole default set, deterministic (SPEC 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from venom.daemon.bench.plugins import DECODE_ROW, bench_plugins
from venom.daemon.config.load import load_config
from venom.daemon.config.settings import DEFAULT_PLUGINS
from venom.daemon.service.simulate import simulate

pytestmark = pytest.mark.anyio


async def test_the_default_set_decides_alike_from_the_same_seed(tmp_path: Path) -> None:
    config = load_config(None, env={}, overrides={"beat.seed": 3})
    one = await simulate(config, 450, tmp_path / "one")
    two = await simulate(config, 450, tmp_path / "two")
    assert one.actions() == two.actions()
    assert [r.decision for r in one.records] != []
    # Every plugin but the ledger answered every beat.
    answered = {n for r in one.records for n in r.replies}
    assert answered == set(DEFAULT_PLUGINS) - {"ledger"}
    assert all(len(r.replies) == len(answered) for r in one.records)
    # The thermal spike of the default scenario (beat 400) is flagged.
    assert any(r.decision.vetoes for r in one.records[400:410])
    assert max(one.telemetry("temperature")) < 85.0
    other = await simulate(
        load_config(None, env={}, overrides={"beat.seed": 4}), 50, tmp_path / "three"
    )
    # The noise follows the seed.
    assert other.telemetry("jitter") != one.telemetry("jitter")[:50]


async def test_bench_plugins_times_every_plugin_but_the_ledger() -> None:
    rows = await bench_plugins(load_config(None, env={}), 60)
    # The pulse's decoding first: a host does it once per beat for all its plugins.
    assert rows[0]["plugin"] == DECODE_ROW
    assert {r["plugin"] for r in rows[1:]} == set(DEFAULT_PLUGINS) - {"ledger"}
    for r in rows:
        assert r["beats"] == 60
        assert 0 < r["p50_us"] <= r["p99_us"]
