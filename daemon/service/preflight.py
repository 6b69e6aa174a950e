"""What ``venom run`` checks before it starts anything (no server, no worker).

A worker process that fails on a setting at start would fail the same way
every time it is restarted, so every configured plugin is loaded, its
settings decoded exactly as :func:`venom.daemon.service.worker.build_plugins` does
(with ``run.scenario`` handed to plugins that have a ``scenario`` setting),
and :meth:`Plugin.check <venom.plugins.sdk.Plugin.check>` run on them: the
plant's scenario file, settings that must agree with each other. The NATS
credential and TLS files are read too. The first problem stops the start
with one line naming the plugin, the key and what is wrong.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from venom.daemon.bus.natsbus import client_options
from venom.daemon.config.settings import VenomConfig
from venom.plugins.registry import load_plugin_class
from venom.plugins.sdk import Plugin
from venom.schemas import ConfigError, PluginError, PluginValidationError

#: Settings ``[run]`` hands to every plugin that has one: plugin key → run key.
FROM_RUN = {"scenario": "run.scenario"}


def check_start(config: VenomConfig) -> None:
    """Check what ``venom run`` would fail on once started; raise the first problem."""
    client_options(config.nats)
    check_plugins(config, list(config.plugins.run))


def check_plugins(config: VenomConfig, specs: list[str]) -> None:
    """Load, decode and check the plugins ``specs`` (names or ``module:Class``)."""
    seen: set[str] = set()
    for spec in specs:
        cls = load_plugin_class(spec)
        if cls.name in seen:
            raise ConfigError(f"plugin {cls.name!r} listed twice", key="plugins.run")
        seen.add(cls.name)
        check_plugin(cls, spec, config)


def plugin_settings(
    cls: type[Plugin[Any]], spec: str, config: VenomConfig
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the plugin's settings, where each came from), as ``build_plugins`` makes them.

    The second item maps each setting to the key a user wrote it under
    (``plugins.settings.optical-plant.gain``, ``run.scenario``); ``""`` maps
    to the plugin's table.
    """
    table = cls.name if config.plugins.settings.get(cls.name) else spec
    settings = dict(config.plugins.settings.get(table) or {})
    prefix = f"plugins.settings.{table}"
    origin = {"": prefix} | {key: f"{prefix}.{key}" for key in cls.config_type.__struct_fields__}
    for key, run_key in FROM_RUN.items():
        value = getattr(config.run, run_key.removeprefix("run."))
        if value and key in origin and key not in settings:
            settings[key] = value
            origin[key] = run_key
    return settings, origin


def check_plugin(cls: type[Plugin[Any]], spec: str, config: VenomConfig) -> None:
    """Decode the plugin's settings and run its check; one-line errors name the key."""
    settings, origin = plugin_settings(cls, spec, config)
    plugin_config = _decode(cls, settings, origin)
    try:
        cls.check(plugin_config)
    except ConfigError as exc:
        reason = str(exc).removeprefix(f"{exc.key}: ") if exc.key else str(exc)
        raise _named(cls, origin.get(exc.key, f"{origin['']}.{exc.key}"), reason) from exc
    except Exception as exc:  # the plugin's own code: name it, in one line
        raise PluginError(
            f"plugin {cls.name!r}: its settings check failed: {type(exc).__name__}: {exc}"
        ) from exc


#: msgspec's "Expected `float`, got `str` - at `$.a[0][2]`": what, key, the rest.
_AT = re.compile(r"^(?P<what>.*) - at `\$\.(?P<key>[^.\[`]+)(?P<rest>[^`]*)`$")


def _decode(cls: type[Plugin[Any]], settings: dict[str, Any], origin: dict[str, str]) -> Any:
    """``cls.decode_config(settings)``; a msgspec error names the key it was written under."""
    try:
        return cls.decode_config(settings)
    except PluginValidationError as exc:
        cause = exc.__cause__
        if not isinstance(cause, msgspec.ValidationError):
            raise
        at = _AT.match(str(cause))
        if at is None:  # an unknown field: the table
            raise _named(cls, origin[""], str(cause)) from exc
        key = origin.get(at["key"], f"{origin['']}.{at['key']}") + at["rest"]
        raise _named(cls, key, at["what"]) from exc


def _named(cls: type[Plugin[Any]], key: str, reason: str) -> ConfigError:
    """``plugin 'x': <key>: <reason>`` with ``key`` kept on the error."""
    error = ConfigError(f"plugin {cls.name!r}: {key}: {reason}")
    error.key = key
    return error
