"""Where `venom run` hosts its plugins, and the config its workers read."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from venom.daemon.config.load import load_config
from venom.daemon.config.settings import DEFAULT_PLUGINS, PluginsConfig, VenomConfig
from venom.daemon.service.supervisor import split
from venom.daemon.service.worker import place_plugins
from venom.schemas import ConfigError


def test_split_keeps_order_and_balances() -> None:
    names = [f"p{i}" for i in range(7)]
    assert split(names, 3) == [["p0", "p1", "p2"], ["p3", "p4"], ["p5", "p6"]]
    assert split(names, 1) == [names]
    assert split(names[:2], 5) == [["p0"], ["p1"]]  # never an empty process
    with pytest.raises(ConfigError, match=r"plugins\.processes"):
        split(names, 0)


def test_default_set_goes_to_one_worker() -> None:
    assert place_plugins(VenomConfig()) == ([], [DEFAULT_PLUGINS])


def test_plugins_alone_get_a_process_each_and_the_rest_are_split() -> None:
    config = VenomConfig(plugins=PluginsConfig(processes=2, alone=["entropy-model", "ledger"]))
    local, groups = place_plugins(config)
    rest = [n for n in DEFAULT_PLUGINS if n not in ("entropy-model", "ledger")]
    assert local == []
    assert groups == [*split(rest, 2), ["entropy-model"], ["ledger"]]


def test_a_plugin_alone_must_be_one_that_runs() -> None:
    with pytest.raises(ConfigError, match=r"'thermals' is not in plugins.run") as info:
        load_config(None, env={}, overrides={"plugins.alone": ["thermals"]})
    assert info.value.key == "plugins.alone"


def test_processes_zero_hosts_everything_in_the_daemon() -> None:
    config = VenomConfig(plugins=PluginsConfig(processes=0))
    assert place_plugins(config) == (DEFAULT_PLUGINS, [])


def test_an_unknown_plugin_is_refused_before_anything_starts() -> None:
    config = VenomConfig(plugins=PluginsConfig(run=["kalman", "no-such-plugin"]))
    with pytest.raises(Exception, match="no-such-plugin"):
        place_plugins(config)


def test_the_workers_json_config_round_trips(tmp_path: Path) -> None:
    config = load_config(None, env={}, overrides={"run.scenario": "storm", "beat.seed": 9})
    path = tmp_path / "plugins.json"
    path.write_bytes(msgspec.json.encode(config))
    assert load_config(path, env={}) == config


def test_a_bad_json_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "plugins.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be an object"):
        load_config(path, env={})
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"invalid JSON in .*plugins\.json"):
        load_config(path, env={})
    path.write_text(json.dumps({"plugins": {"processes": -1}}))
    with pytest.raises(ConfigError, match="processes"):
        load_config(path, env={})
