"""Configuration: defaults, file, env, flags, errors naming the key (SPEC 9)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from venom.daemon.config import dump_default_config, load_config, resolve_state_dir
from venom.daemon.settings import VenomConfig
from venom.schemas import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "ops" / "venom.toml.example"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "venom.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_spec_numbers() -> None:
    cfg = load_config(None, env={})
    assert cfg.beat.period is None
    assert (cfg.beat.t1, cfg.beat.u, cfg.beat.k, cfg.beat.p) == (0.001, math.e**4, 4, 5)
    assert cfg.beat.deadline_fraction == 0.8
    assert cfg.beat.breaker_after == 5
    th = cfg.thresholds
    assert (
        th.threat_quarantine,
        th.threat_alert,
        th.stability,
        th.repair,
        th.opt_gain,
        th.ml_weight,
    ) == (0.85, 0.60, 0.25, 0.10, 0.10, 0.12)
    assert (cfg.pid.kp, cfg.pid.ki, cfg.pid.kd, cfg.pid.t_threshold) == (0.6, 0.1, 0.05, 0.02)
    assert (cfg.genome.R, cfg.genome.floor) == (0.25, 0.01)
    assert cfg.nats.url == ""


def test_file_values(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[beat]\nperiod = 0.01\n[nats]\nprefix = 'lab'\n"), env={})
    assert cfg.beat.period == 0.01
    assert cfg.nats.prefix == "lab"


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("[beat]\nperod = 1\n", "beat.perod", "unknown key"),
        ("[beet]\nperiod = 1\n", "beet", "unknown key"),
        ("[beat]\nperiod = 'fast'\n", "beat.period", "Expected"),
        ("[beat]\nperiod = -1.0\n", "beat.period", ">= 0"),
        ("[thresholds]\nthreat_alert = 1.5\n", "thresholds.threat_alert", "<= 1"),
        ("[beat]\nk = 1\np = 1\n", "beat.k", "k·P"),
        ("[thresholds]\nthreat_alert = 0.9\n", "thresholds.threat_alert", "must not exceed"),
        ("[plugins]\nrun = ['Bad Name']\n", "plugins.run", "neither"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert info.value.key == key
    assert needle in str(info.value)
    assert str(info.value).startswith(key)


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[beat\n"), env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[beat]\nperiod = 0.01\n[nats]\nurl = 'nats://file:4222'\n")
    env = {"VENOM_NATS_URL": "nats://env:4222", "VENOM_BEAT_PERIOD": "0.02"}
    cfg = load_config(path, env=env)
    assert (cfg.nats.url, cfg.beat.period) == ("nats://env:4222", 0.02)
    cfg = load_config(path, env=env, overrides={"beat.period": 0.0})
    assert (cfg.nats.url, cfg.beat.period) == ("nats://env:4222", 0.0)


def test_unknown_env_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="VENOM_BEAT_PERIDO"):
        load_config(None, env={"VENOM_BEAT_PERIDO": "1"})
    with pytest.raises(ConfigError, match="VENOM_BEAT_PERIOD"):
        load_config(None, env={"VENOM_BEAT_PERIOD": "soon"})


def test_state_dir_resolution_order(tmp_path: Path) -> None:
    cfg = VenomConfig()
    env = {"VENOM_STATE_DIR": str(tmp_path / "env"), "STATE_DIRECTORY": f"{tmp_path}/sd:/x"}
    assert resolve_state_dir(str(tmp_path / "flag"), cfg, env) == tmp_path / "flag"
    assert resolve_state_dir(None, cfg, env) == tmp_path / "env"
    assert resolve_state_dir(None, cfg, {"STATE_DIRECTORY": f"{tmp_path}/sd:/x"}) == tmp_path / "sd"
    assert (tmp_path / "sd").is_dir()


def test_example_file_is_in_sync_and_loads(tmp_path: Path) -> None:
    assert EXAMPLE.read_text() == dump_default_config()
    assert load_config(EXAMPLE, env={}) == VenomConfig()
