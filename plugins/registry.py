"""Finding plugins: the ``venom.plugins`` entry-point group, or ``module:Class``.

Every class is validated when it is loaded (:func:`validate_plugin`); a bad
one raises :class:`PluginValidationError` naming it and what is wrong.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from venom.plugins.sdk import Plugin, PluginContext, validate_plugin
from venom.schemas import ConfigError, PluginError, PluginValidationError, VenomError

GROUP = "venom.plugins"


def available() -> dict[str, str]:
    """Installed plugin names → ``module:Class`` (not imported)."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_plugin_class(spec: str) -> type[Plugin[Any]]:
    """Load a plugin class by entry-point name or ``module:Class``."""
    if ":" in spec:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(f"plugin {spec!r}: cannot import {module_name}: {exc}") from exc
        except Exception as exc:  # the module's own code failed while it was imported
            raise PluginError(
                f"plugin {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            obj = getattr(module, attr)
        except AttributeError as exc:
            raise PluginError(f"plugin {spec!r}: {module_name} has no {attr}") from exc
        return validate_plugin(obj, origin=spec)
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == spec]
    if not matches:
        known = ", ".join(sorted(available())) or "none"
        raise PluginError(f"no plugin named {spec!r} is installed (installed: {known})")
    try:
        obj = matches[0].load()
    except Exception as exc:
        raise PluginValidationError(spec, f"failed to import {matches[0].value}: {exc}") from exc
    cls = validate_plugin(obj, origin=spec)
    if cls.name != spec:
        raise PluginValidationError(
            spec, f"entry point name differs from the class's name {cls.name!r}"
        )
    return cls


def create_plugin(cls: type[Plugin[Any]], config: Any, context: PluginContext) -> Plugin[Any]:
    """An instance of ``cls``; a constructor that fails raises :class:`PluginError` naming it."""
    try:
        return cls(config, context)
    except ConfigError as exc:  # Plugin.check refused a setting
        raise PluginValidationError(cls.name, f"invalid config: {exc}") from exc
    except VenomError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {cls.name!r} cannot be created: {type(exc).__name__}: {exc}"
        ) from exc
