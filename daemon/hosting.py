"""``venom plugin run``: plugins as their own process, and what builds them.

:func:`build_plugins` loads, validates and configures plugins by name
(``venom run`` uses it for the plugins it hosts in-process);
:func:`place_plugins` decides which run in the daemon and which in its
worker processes; :func:`run_plugins` hosts plugins until SIGINT/SIGTERM
(or until the daemon that started it is gone), telling systemd and the
health endpoint how it is, like the daemon does.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from opentelemetry.trace import TracerProvider

from venom.daemon.bus import Bus
from venom.daemon.health import HealthServer
from venom.daemon.natsbus import NatsBus, client_options
from venom.daemon.preflight import plugin_settings
from venom.daemon.service import ServiceState
from venom.daemon.settings import VenomConfig
from venom.daemon.supervisor import split
from venom.daemon.telemetry import Telemetry
from venom.plugins.host import PluginHost
from venom.plugins.registry import create_plugin, load_plugin_class
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import Codec, ConfigError, Message, Subjects, VenomError

log = logging.getLogger("venom.run")


def build_plugins(
    names: list[str],
    config: VenomConfig,
    bus: Bus,
    state_dir: Path,
    codec: Codec,
    tracer_provider: TracerProvider | None = None,
) -> list[Plugin[Any]]:
    """Load, validate and configure the plugins named in ``names``."""
    subjects = Subjects(config.nats.prefix)
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


def place_plugins(config: VenomConfig) -> tuple[list[str], list[list[str]]]:
    """(hosted in the daemon, groups hosted in plugin processes) from ``plugins.run``.

    With ``plugins.processes = N >= 1`` the plugins are split in N processes,
    in the order of ``run``, except those in ``plugins.alone``, which get a
    process each; with 0 every plugin runs in the daemon. Every name is
    checked here, before any process starts.

    One process for the whole default set is what fits a small machine best:
    each process a pulse wakes costs its receive, its reply and the server's
    copies (docs/catalog.md, Cost, has the figures).
    """
    for spec in config.plugins.run:
        load_plugin_class(spec)
    if config.plugins.processes == 0:
        return list(config.plugins.run), []
    alone = set(config.plugins.alone)
    shared = [spec for spec in config.plugins.run if spec not in alone]
    groups = split(shared, config.plugins.processes) if shared else []
    return [], groups + [[spec] for spec in config.plugins.run if spec in alone]


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


async def _watch_parent(parent: int, on_stop: Any) -> None:
    """Stop when the daemon that started this process is gone (even by kill -9)."""
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us; poll
        await anyio.sleep(0.5)
    log.warning("parent process %d is gone: stopping", parent)
    on_stop()


async def run_plugins(
    config: VenomConfig, names: list[str], url: str, state_dir: Path, *, parent: int = 0
) -> None:
    """Host ``names`` as their own process until SIGINT/SIGTERM (or ``parent`` exits).

    Signals are watched from the first moment: one that comes while the
    plugins start lets them finish starting and then stops them in order
    (a ledger restarted a moment before the daemon stops still drains the
    stream); a second one stops at once. Under systemd: ``READY=1`` once the
    plugins answer, ``WATCHDOG=1`` while the event loop turns, ``STOPPING=1``.
    """
    codec = Codec(max_bytes=config.beat.max_reply_bytes)
    stopped = anyio.Event()
    state = ServiceState(role="plugins", stall_after=config.health.stall_after)

    def stop() -> None:
        state.stop()
        stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals, stop, tg.cancel_scope)
        tg.start_soon(state.starting)
        if parent:
            tg.start_soon(_watch_parent, parent, stop)
        try:
            await _host_until(config, names, url, state_dir, codec, stopped, state, parent)
        except Exception as exc:
            if parent:  # the supervisor gives up on a child that keeps failing this way
                _tell_parent(f"error: {_reason(exc)}")
            raise
        finally:
            state.notifier.close()
        tg.cancel_scope.cancel()


def _reason(exc: BaseException) -> str:
    """One line for what stopped the start (a venom error says it already)."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    text = str(exc) if isinstance(exc, VenomError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _tell_parent(line: str) -> None:
    """A line on stdout for ``venom run``'s supervisor (see supervisor.py).

    A daemon that is gone cannot read it: then nothing is said (the parent
    watch stops this process).
    """
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Later flushes (at exit) must not raise again on the same pipe.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


async def _host_until(
    config: VenomConfig,
    names: list[str],
    url: str,
    state_dir: Path,
    codec: Codec,
    stopped: anyio.Event,
    state: ServiceState,
    parent: int,
) -> None:
    async with AsyncExitStack() as stack:
        telemetry = Telemetry.from_config(config.telemetry, role="plugin", metrics=False)
        stack.callback(telemetry.shutdown)
        tracing = telemetry.tracer_provider
        if config.health.enabled:
            h = config.health
            await stack.enter_async_context(HealthServer(state, h.host, h.port))
        bus = await connect(config, url, f"venom-plugin-{'-'.join(names)}"[:60])
        stack.push_async_callback(bus.close)
        plugins = build_plugins(names, config, bus, state_dir, codec, tracing)
        subjects = Subjects(config.nats.prefix)
        await stack.enter_async_context(
            PluginHost(plugins, bus, subjects=subjects, codec=codec, tracer_provider=tracing)
        )
        listed = ", ".join(p.name for p in plugins)
        log.info("plugin(s) %s answering on %s", listed, url)
        state.readiness = lambda: (True, "") if bus.connected else (False, "NATS connection lost")
        state.describe = lambda: f"answering for {listed}"
        # Start-up garbage (torch, numpy, the plugins) is permanent: keep the
        # collector from walking it while a pulse waits.
        gc.collect()
        gc.freeze()
        if parent:
            _tell_parent("ready")
        while not stopped.is_set():
            state.turn()
            with anyio.move_on_after(min(1.0, state.notifier.watchdog_interval or 1.0)):
                await stopped.wait()
