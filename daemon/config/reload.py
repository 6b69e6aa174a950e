"""SIGHUP: read the config again and apply what can change while beating.

Live (next beat): ``[thresholds]``, the genome's floor and dynamics
(``floor``, ``threat_trigger``, ``e_gain``, ``e_decay_beats``, ``o_ref``),
``plugins.required_guards`` and ``run.log_level``. Everything else (the
bus, the period, the plugin set, the ledger, telemetry ...) is read at start
only: a change there is logged as needing a restart and not applied. A
config that does not load is refused as a whole, with the reason, and the
running one stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec

from venom.daemon.config.settings import VenomConfig

log = logging.getLogger("venom.reload")

#: Dotted keys (or whole sections) that take effect on the next beat.
LIVE = (
    "thresholds.",
    "genome.floor",
    "genome.threat_trigger",
    "genome.e_gain",
    "genome.e_decay_beats",
    "genome.o_ref",
    "plugins.required_guards",
    "run.log_level",
)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree and not prefix.startswith("plugins.settings."):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_leaves(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): tree}


def changes(old: VenomConfig, new: VenomConfig) -> dict[str, tuple[Any, Any]]:
    """Dotted key → (old, new) for every value that differs."""
    a = _leaves(msgspec.to_builtins(old))
    b = _leaves(msgspec.to_builtins(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def is_live(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in LIVE)


def live_config(running: VenomConfig, loaded: VenomConfig) -> VenomConfig:
    """``running`` with the live keys taken from ``loaded``."""
    g = running.genome
    ng = loaded.genome
    genome = msgspec.structs.replace(
        g,
        floor=ng.floor,
        threat_trigger=ng.threat_trigger,
        e_gain=ng.e_gain,
        e_decay_beats=ng.e_decay_beats,
        o_ref=ng.o_ref,
    )
    plugins = msgspec.structs.replace(
        running.plugins, required_guards=list(loaded.plugins.required_guards)
    )
    run = msgspec.structs.replace(running.run, log_level=loaded.run.log_level)
    return msgspec.structs.replace(
        running, thresholds=loaded.thresholds, genome=genome, plugins=plugins, run=run
    )


def reload_config(
    running: VenomConfig, load: Callable[[], VenomConfig]
) -> tuple[VenomConfig, list[str]]:
    """(the config to run with now, what changed) after loading it again with ``load``.

    Logs each change, and each change that needs a restart; a config that
    fails to load is logged and ``running`` is returned unchanged.
    """
    try:
        loaded = load()
    except Exception as exc:
        log.error("config not reloaded, keeping the running one: %s", exc)
        return running, []
    diff = changes(running, loaded)
    applied = [k for k in diff if is_live(k)]
    ignored = [k for k in diff if not is_live(k)]
    for key in applied:
        log.info("config reloaded: %s %r -> %r", key, *diff[key])
    for key in ignored:
        log.warning("config: %s %r -> %r needs a restart (not applied)", key, *diff[key])
    if not diff:
        log.info("config reloaded: nothing changed")
    return (live_config(running, loaded) if applied else running), applied
