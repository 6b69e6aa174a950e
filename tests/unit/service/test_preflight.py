"""What ``venom run`` checks before it starts anything (daemon/preflight.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from venom.daemon.config.load import load_config
from venom.daemon.service.preflight import check_plugins, check_start, plugin_settings
from venom.plugins.sdk import NoConfig, Plugin
from venom.plugins.sensors.plant import OpticalPlant
from venom.schemas import ConfigError, PluginError, Pulse, Reply, Role


def config(tmp_path: Path, toml: str = "", **overrides: Any) -> Any:
    path = tmp_path / "venom.toml"
    path.write_text(toml)
    return load_config(path, env={}, overrides=overrides)


class Crashes(Plugin[NoConfig]):
    """A plugin whose check has a bug."""

    name: ClassVar[str] = "crashes"
    role: ClassVar[Role] = "guard"

    async def handle(self, pulse: Pulse) -> Reply:
        raise NotImplementedError

    @classmethod
    def check(cls, config: NoConfig) -> None:
        raise KeyError("oops")


def test_the_default_set_passes(tmp_path: Path) -> None:
    check_start(config(tmp_path))


def test_run_scenario_reaches_the_plant_and_is_named_as_run_scenario(tmp_path: Path) -> None:
    cfg = config(tmp_path, **{"run.scenario": "storm"})
    settings, origin = plugin_settings(OpticalPlant, "optical-plant", cfg)
    assert settings == {"scenario": "storm"}
    assert origin["scenario"] == "run.scenario"
    assert origin["gain"] == "plugins.settings.optical-plant.gain"
    # A scenario in the plant's own table wins, as build_plugins has it.
    own = config(
        tmp_path, '[plugins.settings.optical-plant]\nscenario = "calm"\n', **{"run.scenario": "x"}
    )
    settings, origin = plugin_settings(OpticalPlant, "optical-plant", own)
    assert settings == {"scenario": "calm"}
    assert origin["scenario"] == "plugins.settings.optical-plant.scenario"


@pytest.mark.parametrize(
    ("toml", "scenario", "line"),
    [
        (
            "",
            "nope.toml",
            "plugin 'optical-plant': run.scenario: no scenario 'nope.toml': not one of calm, "
            "default, storm and no such file",
        ),
        (
            '[plugins.settings.optical-plant]\nscenario = "gone.toml"\n',
            "",
            "plugin 'optical-plant': plugins.settings.optical-plant.scenario: no scenario "
            "'gone.toml'",
        ),
        (
            "[plugins.settings.optical-plant]\ngain = 'high'\n",
            "",
            "plugin 'optical-plant': plugins.settings.optical-plant.gain: Expected `float`, "
            "got `str`",
        ),
        (
            "[plugins.settings.optical-plant]\na = [[1.0, 2.0, 'x']]\n",
            "",
            "plugin 'optical-plant': plugins.settings.optical-plant.a[0][2]: Expected `float`",
        ),
        (
            "[plugins.settings.optical-plant]\na = [[1.0, 2.0]]\n",
            "",
            "plugin 'optical-plant': plugins.settings.optical-plant.a: must be 3x3, got 1 x 2",
        ),
        (
            "[plugins.settings.optical-plant]\ngainz = 1\n",
            "",
            "plugin 'optical-plant': plugins.settings.optical-plant: Object contains unknown "
            "field `gainz`",
        ),
        (
            "[plugins.settings.thermal]\nlow = 90.0\n",
            "",
            "plugin 'thermal': plugins.settings.thermal.medium: the thresholds must satisfy",
        ),
        (
            "[plugins.settings.ber]\ntier = 'platinum'\n",
            "",
            "plugin 'ber': plugins.settings.ber.tier: 'platinum' is not one of the tiers",
        ),
        (
            "[plugins.settings.kalman]\nfeatures = ['plant.y0']\n",
            "",
            "plugin 'kalman': plugins.settings.kalman.features: 1 feature(s) for the 3 rows of c",
        ),
        (
            "[plugins.settings.correlation]\nsignals = ['a']\n",
            "",
            "plugin 'correlation': plugins.settings.correlation.signals:",
        ),
        (
            "[plugins.settings.flow]\nfunction = 'linear'\n",
            "",
            "plugin 'flow': plugins.settings.flow.weights: linear flow needs 3 weights",
        ),
        (
            "[plugins.settings.stability]\nclosed_loop = [[1.0, 0.0]]\n",
            "",
            "plugin 'stability': plugins.settings.stability.closed_loop: must be a square",
        ),
        (
            "[plugins.settings.dissonance]\nreference = [1.0]\n",
            "",
            "plugin 'dissonance': plugins.settings.dissonance.reference: reference has 1 values",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_plugin_and_the_key(
    tmp_path: Path, toml: str, scenario: str, line: str
) -> None:
    overrides = {"run.scenario": scenario} if scenario else {}
    with pytest.raises(ConfigError) as info:
        check_start(config(tmp_path, toml, **overrides))
    assert str(info.value).startswith(line), str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.key in str(info.value)


def test_a_scenario_file_that_is_not_toml_or_not_text(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[disturbance\n')
    with pytest.raises(ConfigError, match=r"run\.scenario: .*bad\.toml: invalid TOML"):
        check_start(config(tmp_path, **{"run.scenario": str(bad)}))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"binary\.toml: not a TOML file \(not UTF-8"):
        check_start(config(tmp_path, **{"run.scenario": str(binary)}))
    with pytest.raises(ConfigError, match="no such file"):
        check_start(config(tmp_path, **{"run.scenario": str(tmp_path)}))


def test_the_nats_files_are_read_before_anything_starts(tmp_path: Path) -> None:
    cfg = config(tmp_path, f'[nats]\ncredentials = "{tmp_path / "gone.creds"}"\n')
    with pytest.raises(ConfigError, match=r"^nats\.credentials: .*gone\.creds"):
        check_start(cfg)


def test_a_check_with_a_bug_is_one_line_naming_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(
        PluginError, match=r"^plugin 'crashes': its settings check failed: KeyError"
    ):
        check_plugins(config(tmp_path), ["tests.unit.service.test_preflight:Crashes"])


def test_a_plugin_listed_twice_under_two_names(tmp_path: Path) -> None:
    specs = ["noop", "venom.plugins.noop:NoopPlugin"]
    with pytest.raises(ConfigError, match=r"plugins\.run: plugin 'noop' listed twice"):
        check_plugins(config(tmp_path), specs)
