"""Configuration: defaults, file, env, flags, errors naming the key (SPEC 9)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest

from venom.daemon.config.load import dump_default_config, load_config, resolve_state_dir
from venom.daemon.config.settings import RunConfig, VenomConfig
from venom.schemas import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "ops" / "venom.toml.example"


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory, so a ./venom.toml of the checkout does not count."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "venom.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_spec_numbers() -> None:
    cfg = load_config(None, env={})
    assert cfg == VenomConfig()
    assert cfg.beat.period is None
    assert (cfg.beat.t1, cfg.beat.u, cfg.beat.k, cfg.beat.p) == (0.001, math.e**4, 4, 5)
    assert (cfg.beat.min_period, cfg.beat.deadline_fraction) == (1e-6, 0.8)
    assert (cfg.beat.breaker_after, cfg.beat.back_to_back_deadline) == (5, 1.0)
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
    assert (cfg.pid.integral_limit, cfg.pid.reset_epsilon, cfg.pid.output_limit) == (
        1.0,
        1e-4,
        0.05,
    )
    assert cfg.pid.window == 10
    g = cfg.genome
    assert (g.R, g.B, g.E, g.O, g.floor) == (0.25, 0.25, 0.25, 0.25, 0.01)
    assert (g.threat_trigger, g.e_gain, g.e_decay_beats, g.o_ref) == (0.5, 0.15, 50.0, 0.3)
    assert (cfg.nats.url, cfg.nats.prefix) == ("", "venom")


def test_file_values(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "[beat]\nperiod = 0.01\n[nats]\nprefix = 'lab'\n"), env={})
    assert cfg.beat.period == 0.01
    assert cfg.nats.prefix == "lab"


def test_venom_toml_in_the_working_directory_is_the_default(tmp_path: Path) -> None:
    write(tmp_path, "[beat]\nseed = 7\n")
    assert load_config(None, env={}).beat.seed == 7
    other = tmp_path / "other.toml"
    other.write_text("[beat]\nseed = 8\n")
    assert load_config(None, env={"VENOM_CONFIG": str(other)}).beat.seed == 8


@pytest.mark.parametrize(
    ("text", "key", "needle"),
    [
        ("[beat]\nperod = 1\n", "beat.perod", "unknown key beat.perod"),
        ("[beet]\nperiod = 1\n", "beet", "unknown key beet"),
        ("[beat]\nperiod = 'fast'\n", "beat.period", "Expected `float | null`, got `str`"),
        ("[beat]\nperiod = -1.0\n", "beat.period", ">= 0"),
        ("[beat]\nk = 1.5\n", "beat.k", "Expected `int`"),
        ("[thresholds]\nthreat_alert = 1.5\n", "thresholds.threat_alert", "<= 1"),
        ("[plugins]\nrun = [1]\n", "plugins.run[0]", "Expected `str`"),
        ("[beat]\nk = 1\np = 1\n", "beat.k", "undefined for k·P ≤ 1"),
        ("[beat]\nk = 0\n", "beat.k", "k·P"),
        ("[beat]\nk = 1\np = 0\n", "beat.p", "k·P"),
        ("[beat]\nk = -2\np = -3\n", "beat.k", "k·P"),
        ("[thresholds]\nthreat_alert = 0.9\n", "thresholds.threat_alert", "must not exceed"),
        ("[genome]\nR = 0\nB = 0\nE = 0\nO = 0\n", "genome", "all be zero"),
        ("[plugins]\nrun = ['Bad Name']\n", "plugins.run", "neither"),
        ("[plugins]\nrun = ['noop', 'noop']\n", "plugins.run", "more than once: noop"),
        ("[plugins]\nrequired_guards = ['a:B']\n", "plugins.required_guards", "not a plugin"),
        ("[run]\nlog_level = 'loud'\n", "run.log_level", "not one of"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    assert info.value.key == key
    assert needle in str(info.value)
    assert str(info.value).startswith(f"{key}: ")


def test_a_type_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[beat]\nperiod = 'fast'\n")
    with pytest.raises(ConfigError, match=f"from {path}"):
        load_config(path, env={})


def test_plugin_names_and_classes_are_accepted(tmp_path: Path) -> None:
    text = "[plugins]\nrun = ['regen-core', 'my_pkg.mod:MyPlugin']\nrequired_guards = ['cusum']\n"
    cfg = load_config(write(tmp_path, text), env={})
    assert cfg.plugins.run == ["regen-core", "my_pkg.mod:MyPlugin"]


def test_bad_toml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[beat]\nperiod = = 1\n")
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config(path, env={})
    assert str(path) in str(info.value)
    assert "line 2, column" in str(info.value)


def test_missing_explicit_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match=r"gone\.toml does not exist"):
        load_config(None, env={"VENOM_CONFIG": str(tmp_path / "gone.toml")})


def test_env_overrides_file_and_flags_override_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[beat]\nperiod = 0.01\nseed = 3\n[nats]\nurl = 'nats://file:4222'\n")
    assert load_config(path, env={}).nats.url == "nats://file:4222"
    env = {"VENOM_NATS_URL": "nats://env:4222", "VENOM_BEAT_PERIOD": "0.02"}
    cfg = load_config(path, env=env)
    assert (cfg.nats.url, cfg.beat.period, cfg.beat.seed) == ("nats://env:4222", 0.02, 3)
    cfg = load_config(path, env=env, overrides={"beat.period": 0.0, "nats.url": "nats://cli:1"})
    assert (cfg.nats.url, cfg.beat.period, cfg.beat.seed) == ("nats://cli:1", 0.0, 3)


@pytest.mark.parametrize(
    ("var", "raw", "read"),
    [
        ("VENOM_NATS_URL", "nats://a:4222,nats://b:4222", ("nats", "url")),
        ("VENOM_NATS_USER", "123", ("nats", "user")),
        ("VENOM_BEAT_K", "6", ("beat", "k")),
        ("VENOM_BEAT_PERIOD", "", ("beat", "period")),
        ("VENOM_GENOME_R", "0.5", ("genome", "R")),
        ("VENOM_RUN_LIVE", "no", ("run", "live")),
        ("VENOM_RUN_LIVE", "true", ("run", "live")),
        ("VENOM_RUN_STATE_DIR", "/var/lib/venom", ("run", "state_dir")),
        ("VENOM_PLUGINS_RUN", "noop, ledger", ("plugins", "run")),
        ("VENOM_PLUGINS_RUN", '["noop"]', ("plugins", "run")),
    ],
)
def test_env_values_take_the_type_of_their_key(var: str, raw: str, read: tuple[str, str]) -> None:
    expected = {
        "nats://a:4222,nats://b:4222": "nats://a:4222,nats://b:4222",
        "123": "123",
        "6": 6,
        "": None,
        "0.5": 0.5,
        "no": False,
        "true": True,
        "/var/lib/venom": "/var/lib/venom",
        "noop, ledger": ["noop", "ledger"],
        '["noop"]': ["noop"],
    }[raw]
    cfg = load_config(None, env={var: raw})
    assert getattr(getattr(cfg, read[0]), read[1]) == expected


def test_bad_env_variables_are_named(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match="VENOM_BEAT_PERIDO") as info:
        load_config(None, env={"VENOM_BEAT_PERIDO": "1"})
    assert info.value.key == "VENOM_BEAT_PERIDO"
    with pytest.raises(ConfigError, match="from VENOM_BEAT_PERIOD") as info:
        load_config(None, env={"VENOM_BEAT_PERIOD": "soon"})
    assert info.value.key == "beat.period"
    with caplog.at_level(logging.WARNING, logger="venom.config"):
        cfg = load_config(None, env={"VENOM_HOME": "/x", "VENOM_STATE_DIR": "/y"})
    assert cfg == VenomConfig()
    assert "VENOM_HOME" in caplog.text
    assert "VENOM_STATE_DIR" not in caplog.text


def test_a_bad_flag_is_named() -> None:
    with pytest.raises(ConfigError, match="from the command line") as info:
        load_config(None, env={}, overrides={"beat.perod": 1.0})
    assert info.value.key == "beat.perod"


def test_state_dir_resolution_order(tmp_path: Path) -> None:
    cfg = VenomConfig(run=RunConfig(state_dir=str(tmp_path / "cfg")))
    env = {"VENOM_STATE_DIR": str(tmp_path / "env"), "STATE_DIRECTORY": f"{tmp_path}/sd:/x"}
    assert resolve_state_dir(str(tmp_path / "flag"), cfg, env) == tmp_path / "flag"
    assert resolve_state_dir(None, cfg, env) == tmp_path / "env"
    del env["VENOM_STATE_DIR"]
    assert resolve_state_dir(None, cfg, env) == tmp_path / "sd"
    assert resolve_state_dir(None, cfg, {}) == tmp_path / "cfg"
    assert resolve_state_dir(None, VenomConfig(), {}) == Path(".venom")
    for name in ("flag", "env", "sd", "cfg", ".venom"):
        assert (tmp_path / name).is_dir()
        assert (tmp_path / name).stat().st_mode & 0o007 == 0


def test_state_dir_that_cannot_be_made_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="cannot create state directory") as info:
        resolve_state_dir(str(tmp_path / "file" / "state"), VenomConfig(), {})
    assert info.value.key == "state_dir"


def test_example_file_is_in_sync_and_loads(tmp_path: Path) -> None:
    assert EXAMPLE.read_text() == dump_default_config(), (
        "regenerate: python -c 'from pathlib import Path; from venom.daemon.config.load import "
        'dump_default_config as d; Path("ops/venom.toml.example").write_text(d())\''
    )
    assert load_config(EXAMPLE, env={}) == VenomConfig()
    # An operator copies it and adds a plugin's table at the end.
    extended = write(tmp_path, EXAMPLE.read_text() + "[plugins.settings.ledger]\ngroup_ms = 5.0\n")
    assert load_config(extended, env={}).plugins.settings == {"ledger": {"group_ms": 5.0}}
