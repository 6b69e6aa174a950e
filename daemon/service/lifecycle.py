"""The set-up every venom process shares: ``venom run`` and ``venom plugin run`` alike.

A :class:`Process` holds what there is one of per process: the
:class:`~venom.schemas.Codec`, the :class:`~venom.schemas.Subjects`, the
:class:`~venom.daemon.service.state.ServiceState` that systemd and the
health endpoint read, and the telemetry providers. It starts the common
parts in one order on an :class:`~contextlib.AsyncExitStack` (telemetry
first so it shuts down last, after the connections drained, SPEC 5.4; the
health endpoint; each NATS connection; hosted plugins), and
:meth:`Process.serve` runs a body with the signals watched from the first
moment. :func:`build_plugins` loads, validates and configures plugins by
name for whichever process hosts them.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import msgspec
from opentelemetry.trace import TracerProvider

from venom.daemon.bus.base import Bus
from venom.daemon.bus.natsbus import NatsBus, client_options
from venom.daemon.config.settings import VenomConfig
from venom.daemon.observe.providers import TelemetryProviders
from venom.daemon.service.health import HealthServer
from venom.daemon.service.preflight import plugin_settings
from venom.daemon.service.state import ServiceState
from venom.plugins.host import PluginHost
from venom.plugins.registry import create_plugin, load_plugin_class
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import Codec, ConfigError, Message, Subjects

log = logging.getLogger("venom.run")


class Process:
    """One venom process: its codec, subjects, service state and telemetry."""

    def __init__(self, config: VenomConfig, role: str, *, telemetry_role: str) -> None:
        self.config = config
        self.codec = Codec(max_bytes=config.beat.max_reply_bytes)
        self.subjects = Subjects(config.nats.prefix)
        self.state = ServiceState(role=role, stall_after=config.health.stall_after)
        self.telemetry_role = telemetry_role
        self.telemetry: TelemetryProviders | None = None

    async def serve(
        self,
        body: Callable[[], Awaitable[None]],
        on_stop: Callable[[], None],
        on_reload: Callable[[], None] | None = None,
    ) -> None:
        """Run ``body`` with SIGINT/SIGTERM (``on_stop``, then at once) and SIGHUP watched."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals, on_stop, tg.cancel_scope, on_reload)
            tg.start_soon(self.state.starting)
            try:
                await body()
            finally:
                self.state.notifier.close()
            tg.cancel_scope.cancel()

    async def open(
        self, stack: AsyncExitStack, *, metrics: bool, telemetry: TelemetryProviders | None = None
    ) -> TelemetryProviders:
        """Telemetry (``telemetry``, or what ``[telemetry]`` asks for) and the health endpoint."""
        if telemetry is None:
            telemetry = TelemetryProviders.from_config(
                self.config.telemetry, role=self.telemetry_role, metrics=metrics
            )
            stack.callback(telemetry.shutdown)  # pushed first: shut down last
        self.telemetry = telemetry
        if self.config.health.enabled:
            h = self.config.health
            await stack.enter_async_context(HealthServer(self.state, h.host, h.port))
        return telemetry

    async def connect(
        self, stack: AsyncExitStack, url: str, name: str, login: Login | None = None
    ) -> NatsBus:
        """A NATS connection named ``name``, drained and closed when ``stack`` unwinds.

        ``login`` (user, password) replaces the credentials of ``[nats]`` (the
        embedded server's users).
        """
        bus = await connect(with_login(self.config, login), url, name)
        stack.push_async_callback(bus.close)
        return bus

    async def host(
        self, stack: AsyncExitStack, names: list[str], bus: Bus, state_dir: Path
    ) -> list[Plugin[Any]]:
        """Host the plugins ``names`` on ``bus`` until ``stack`` unwinds."""
        tracing = self.telemetry.tracer_provider if self.telemetry is not None else None
        plugins = build_plugins(
            names, self.config, bus, state_dir, self.codec, self.subjects, tracing
        )
        await stack.enter_async_context(
            PluginHost(
                plugins, bus, subjects=self.subjects, codec=self.codec, tracer_provider=tracing
            )
        )
        return plugins


def build_plugins(
    names: list[str],
    config: VenomConfig,
    bus: Bus,
    state_dir: Path,
    codec: Codec,
    subjects: Subjects,
    tracer_provider: TracerProvider | None = None,
) -> list[Plugin[Any]]:
    """Load, validate and configure the plugins named in ``names``."""
    plugins: list[Plugin[Any]] = []

    async def publish(subject: str, message: Message) -> None:
        await bus.publish(subject, codec.encode(message))

    for spec in names:
        cls = load_plugin_class(spec)
        # As `venom run` checked them before it started (run.scenario included).
        settings, _ = plugin_settings(cls, spec, config)
        plugin_config = cls.decode_config(settings)
        context = PluginContext(
            state_dir=state_dir / "plugins" / cls.name,
            subjects=subjects,
            codec=codec,
            publish=publish,
            bus=bus,
            logger=logging.getLogger("venom.plugin"),
            tracer_provider=tracer_provider,
        )
        plugins.append(create_plugin(cls, plugin_config, context))
    seen: set[str] = set()
    for p in plugins:
        if p.name in seen:
            raise ConfigError(f"plugin {p.name!r} listed twice", key="plugins.run")
        seen.add(p.name)
    return plugins


#: A NATS user and its password.
Login = tuple[str, str]


def with_login(config: VenomConfig, login: Login | None) -> VenomConfig:
    """``config`` whose ``[nats]`` logs in as ``login`` (``config`` itself for None)."""
    if login is None:
        return config
    user, password = login
    nats_config = msgspec.structs.replace(config.nats, user=user, password=password)
    return msgspec.structs.replace(config, nats=nats_config)


async def connect(config: VenomConfig, url: str, name: str) -> NatsBus:
    """Connect to NATS with the credentials and TLS files in ``config.nats``."""
    return await NatsBus.connect(
        url,
        name=name,
        connect_timeout=config.nats.connect_timeout,
        options=client_options(config.nats),
    )


async def watch_signals(
    on_stop: Callable[[], None],
    scope: anyio.CancelScope,
    on_reload: Callable[[], None] | None = None,
) -> None:
    """First SIGINT/SIGTERM: ``on_stop``; a second: cancel ``scope``; SIGHUP: ``on_reload``."""
    wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    with anyio.open_signal_receiver(*wanted) as signals:
        count = 0
        async for signum in signals:
            if signum == signal.SIGHUP:
                if on_reload is not None:
                    log.info("SIGHUP: reloading the config")
                    on_reload()
                else:
                    log.info("SIGHUP: nothing to reload in this process")
                continue
            count += 1
            if count == 1:
                log.info("%s: finishing the current beat and stopping", signal.Signals(signum).name)
                on_stop()
            else:
                log.warning("second signal: stopping now")
                scope.cancel()
