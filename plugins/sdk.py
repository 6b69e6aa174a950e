"""The plugin SDK: what a plugin author subclasses.

A plugin is a small class with a ``name``, a ``role``, a semver ``version``,
a config Struct and one async handler that takes the beat's :class:`Pulse`
and returns a reply::

    class Echo(Plugin[EchoConfig]):
        name = "echo"
        role = "estimator"
        version = "1.0.0"
        config_type = EchoConfig

        async def handle(self, pulse: Pulse) -> Reply:
            return EstimateReply(estimator=self.name, values={"beat": float(pulse.beat)})

Lifecycle is an async context manager (``open``/``close``), like anyio's
``AsyncResource``. All state kept across beats belongs to the instance.

Settings are decoded into ``config_type`` (:meth:`Plugin.decode_config`);
what decoding cannot see and the plugin would fail on when it starts (a
file it reads, settings that must agree with each other) belongs in the
:meth:`Plugin.check` classmethod, which ``venom run`` calls for every
configured plugin before anything starts.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar

import msgspec
from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus
from venom.schemas import (
    ROLES,
    Codec,
    Mesh,
    Message,
    PluginValidationError,
    Pulse,
    Reply,
    Role,
    Subjects,
)


class NoConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Config of a plugin that takes none."""


C = TypeVar("C", bound=msgspec.Struct)

Publish = Callable[[str, Message], Awaitable[None]]

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


async def _no_publish(subject: str, message: Message) -> None:
    return None


@dataclass(frozen=True)
class PluginContext:
    """What the host gives a plugin: where to keep state, how to publish."""

    state_dir: Path = field(default_factory=lambda: Path(".venom"))
    subjects: Subjects = field(default_factory=Subjects)
    #: The process's codec (one per process, with its size limit).
    codec: Codec = field(default_factory=Codec)
    publish: Publish = _no_publish
    #: The bus the host runs the plugin on (for plugins that need more than replies,
    #: like the ledger's JetStream consumer).
    bus: Bus | None = None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("venom.plugin"))
    #: The process's tracer provider (None: tracing off), for plugins that make
    #: spans of their own, like the ledger's ``ledger append``.
    tracer_provider: TracerProvider | None = None


class Plugin(ABC, Generic[C]):
    """Base class of every venom plugin. See the module docstring."""

    #: Unique plugin name: lowercase letters, digits and dashes.
    name: ClassVar[str]
    #: One of core, estimator, guard, model, sensor, ledger.
    role: ClassVar[Role]
    #: Semantic version of the plugin.
    version: ClassVar[str] = "0.1.0"
    #: The plugin's config Struct (frozen, forbid_unknown_fields).
    config_type: ClassVar[type[Any]] = NoConfig
    #: One line for ``nats micro info`` and ``venom plugins``.
    description: ClassVar[str] = ""
    #: Mesh subjects (suffixes of ``<prefix>.mesh.``) routed to :meth:`on_mesh`.
    mesh: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: C | None = None, context: PluginContext | None = None) -> None:
        self.config: C = config if config is not None else self.config_type()
        self.context = context if context is not None else PluginContext()
        self.log = self.context.logger.getChild(self.name)

    async def open(self) -> None:
        """Acquire resources (load a checkpoint, open files). Default: nothing."""

    async def close(self) -> None:
        """Release resources (write a checkpoint). Default: nothing."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    async def handle(self, pulse: Pulse) -> Reply:
        """Answer one pulse. Raising makes the host send an ErrorReply."""

    async def on_mesh(self, message: Mesh) -> None:
        """Receive a mesh message on one of :attr:`mesh`'s subjects. Default: ignore."""

    async def after_reply(self, pulse: Pulse) -> None:
        """Work of this beat that its reply need not wait for (learning, say).

        The host awaits it once the beat's replies have gone out, before it
        reads the next pulse; an exception is reported like a handler's, and
        the reply already sent stands. Default: nothing. A plugin that must
        not depend on when this runs (determinism) finishes the work at the
        start of its next :meth:`handle` when it has not run yet.
        """

    @classmethod
    def check(cls, config: C) -> None:
        """Check what the plugin would fail on when it starts; default: nothing.

        Override it to check what decoding the config cannot: files the
        plugin reads, settings that must agree with each other. Raise
        :class:`~venom.schemas.ConfigError` with ``key`` set to the setting
        (``ConfigError("no such file", key="scenario")``). ``venom run``
        calls it for every configured plugin before it starts anything and
        stops with one line naming the plugin and the key; call it from
        ``__init__`` too so a plugin built directly is checked the same way.
        Keep it cheap and free of side effects: it runs in the daemon's
        process, which never builds the plugins it hands to workers.
        """

    @classmethod
    def decode_config(cls, raw: dict[str, Any] | None) -> C:
        """Build the config Struct from a TOML table; PluginValidationError names the key."""
        try:
            return msgspec.convert(raw or {}, cls.config_type)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            raise PluginValidationError(cls.name, f"invalid config: {exc}") from exc


def lookup(pulse: Pulse, key: str) -> float | None:
    """A finite value for ``key``: from the pulse's features, else its context estimates."""
    value = pulse.features.get(key)
    if value is None:
        value = pulse.context.estimates.get(key)
    return value if value is not None and math.isfinite(value) else None


def validate_plugin(obj: object, *, origin: str = "") -> type[Plugin[Any]]:
    """Check that ``obj`` is a well-formed plugin class and return it.

    Raises :class:`PluginValidationError` naming the plugin and the problem.
    """
    label = origin or getattr(obj, "__name__", repr(obj))
    if not (inspect.isclass(obj) and issubclass(obj, Plugin)):
        raise PluginValidationError(label, "is not a subclass of venom.plugins.Plugin")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PluginValidationError(
            label, f"name {name!r} must be lowercase letters, digits and dashes (max 63)"
        )
    label = origin or name
    if getattr(obj, "role", None) not in ROLES:
        raise PluginValidationError(
            label, f"role {getattr(obj, 'role', None)!r} must be one of {', '.join(ROLES)}"
        )
    if not isinstance(obj.version, str) or not SEMVER_RE.match(obj.version):
        raise PluginValidationError(label, f"version {obj.version!r} is not semantic (x.y.z)")
    cfg = obj.config_type
    if not (inspect.isclass(cfg) and issubclass(cfg, msgspec.Struct)):
        raise PluginValidationError(label, "config_type must be a msgspec.Struct subclass")
    if not cfg.__struct_config__.forbid_unknown_fields:
        raise PluginValidationError(label, "config_type must set forbid_unknown_fields=True")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise PluginValidationError(label, f"does not implement {missing}")
    if not inspect.iscoroutinefunction(obj.handle):
        raise PluginValidationError(label, "handle must be an async def")
    try:
        cfg()
    except TypeError as exc:
        raise PluginValidationError(
            label, f"config_type needs defaults for every field: {exc}"
        ) from exc
    return obj
