"""The venom plugin SDK: subclass :class:`Plugin`, answer the pulse.

See ``docs/plugins.md`` for a walk-through.
"""

from venom.plugins.host import PluginHost, PluginRunner
from venom.plugins.registry import GROUP, available, load_plugin_class
from venom.plugins.sdk import NoConfig, Plugin, PluginContext, lookup, validate_plugin
from venom.plugins.testing import PluginHarness
from venom.schemas import (
    ConfigError,
    CoreReply,
    ErrorReply,
    EstimateReply,
    GuardVerdict,
    Mesh,
    PluginError,
    PluginValidationError,
    Pulse,
    PulseContext,
    Reply,
    Telemetry,
    ThreatReply,
)

__all__ = [
    "GROUP",
    "ConfigError",
    "CoreReply",
    "ErrorReply",
    "EstimateReply",
    "GuardVerdict",
    "Mesh",
    "NoConfig",
    "Plugin",
    "PluginContext",
    "PluginError",
    "PluginHarness",
    "PluginHost",
    "PluginRunner",
    "PluginValidationError",
    "Pulse",
    "PulseContext",
    "Reply",
    "Telemetry",
    "ThreatReply",
    "available",
    "load_plugin_class",
    "lookup",
    "validate_plugin",
]
