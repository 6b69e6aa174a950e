"""The venom exception tree.

Every error venom raises on purpose is a ``VenomError``; third-party errors
(nats-py, msgspec, OS) are converted at the edge with ``raise X(...) from exc``
so callers only ever catch these::

    VenomError
    ├── ConfigError            a config file, env var or flag is invalid
    │   └── StateDirInUse      another live venom holds the state directory
    ├── SchemaError            a message does not match its schema
    │   └── NonFiniteError     a float on the wire is NaN or infinite
    ├── BusError               the message bus (NATS) failed or refused
    │   └── ServerError        the embedded nats-server could not start
    ├── PluginError            a plugin failed
    │   ├── PluginValidationError   a plugin class is malformed
    │   └── PluginStartError   a plugin worker process did not come up
    ├── LedgerError            the Merkle ledger failed
    │   └── LedgerCorrupt      the ledger's stored bytes are damaged
    └── BenchError             the daemon under measurement did not start
"""

from __future__ import annotations


class VenomError(Exception):
    """Base class of every error venom raises on purpose."""


class ConfigError(VenomError):
    """Raised when a config file, environment variable or flag is invalid.

    ``key`` names the offending setting (``beat.period``), when known.
    """

    def __init__(self, message: str, *, key: str = "") -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class StateDirInUse(ConfigError):
    """Raised when another live process holds the state directory's lock."""


class SchemaError(VenomError):
    """Raised when a message cannot be encoded or decoded against its schema."""


class NonFiniteError(SchemaError):
    """Raised when a float about to go on the wire is NaN or infinite."""


class BusError(VenomError):
    """Raised when the bus fails: not connected, timed out, refused."""


class ServerError(BusError):
    """Raised when the embedded nats-server cannot be found or started."""


class PluginError(VenomError):
    """Raised when a plugin fails to load, start or answer."""


class PluginValidationError(PluginError):
    """Raised when a plugin class is malformed; the message names the plugin."""

    def __init__(self, plugin: str, problem: str) -> None:
        super().__init__(f"plugin {plugin!r}: {problem}")
        self.plugin = plugin
        self.problem = problem


class PluginStartError(PluginError):
    """Raised when a plugin worker process does not come up."""


class LedgerError(VenomError):
    """Raised when the ledger cannot append, read or prove."""


class LedgerCorrupt(LedgerError):
    """Raised when the ledger's stored bytes fail a checksum, chain or root check."""


class BenchError(VenomError):
    """Raised when the daemon under measurement does not start."""
