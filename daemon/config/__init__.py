"""Settings: the frozen Structs, how a file, the environment and flags make them, reload.

settings (the ``[section]`` Structs of SPEC 9), load (file → env →
flags, validated), reload (which keys apply live), version (the package's
own, from its metadata). Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.config.load import (
        DEFAULT_PATH,
        DEFAULT_STATE_DIR,
        dump_default_config,
        load_config,
        resolve_state_dir,
    )
    from venom.daemon.config.reload import live_config, reload_config
    from venom.daemon.config.settings import (
        BeatConfig,
        EmbeddedConfig,
        GenomeConfig,
        HealthConfig,
        NatsConfig,
        PidConfig,
        PluginsConfig,
        RunConfig,
        TelemetryConfig,
        Thresholds,
        VenomConfig,
    )
    from venom.daemon.config.version import VERSION

#: Each public name and the module that defines it.
_WHERE = {
    "DEFAULT_PATH": "venom.daemon.config.load",
    "DEFAULT_STATE_DIR": "venom.daemon.config.load",
    "dump_default_config": "venom.daemon.config.load",
    "load_config": "venom.daemon.config.load",
    "resolve_state_dir": "venom.daemon.config.load",
    "live_config": "venom.daemon.config.reload",
    "reload_config": "venom.daemon.config.reload",
    "BeatConfig": "venom.daemon.config.settings",
    "EmbeddedConfig": "venom.daemon.config.settings",
    "GenomeConfig": "venom.daemon.config.settings",
    "HealthConfig": "venom.daemon.config.settings",
    "NatsConfig": "venom.daemon.config.settings",
    "PidConfig": "venom.daemon.config.settings",
    "PluginsConfig": "venom.daemon.config.settings",
    "RunConfig": "venom.daemon.config.settings",
    "TelemetryConfig": "venom.daemon.config.settings",
    "Thresholds": "venom.daemon.config.settings",
    "VenomConfig": "venom.daemon.config.settings",
    "VERSION": "venom.daemon.config.version",
}

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_STATE_DIR",
    "VERSION",
    "BeatConfig",
    "EmbeddedConfig",
    "GenomeConfig",
    "HealthConfig",
    "NatsConfig",
    "PidConfig",
    "PluginsConfig",
    "RunConfig",
    "TelemetryConfig",
    "Thresholds",
    "VenomConfig",
    "dump_default_config",
    "live_config",
    "load_config",
    "reload_config",
    "resolve_state_dir",
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
