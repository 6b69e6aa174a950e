"""``venom run`` and ``venom plugin run``: processes around the arbiter.

:func:`run_daemon` starts the embedded nats-server when no URL is configured
(SPEC 5.2), connects the arbiter, hosts the configured plugins in-process on
their own NATS connection, or in supervised child processes
(``plugins.processes``; they talk over the real server either way), runs
the beat loop and shuts down in order on
SIGINT/SIGTERM: finish the beat, stop the plugins, drain both connections,
stop the server.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
from opentelemetry.trace import TracerProvider

from venom.daemon.arbiter import Arbiter
from venom.daemon.beatstream import BeatPublisher
from venom.daemon.bus import Bus
from venom.daemon.embedded import EmbeddedServer
from venom.daemon.natsbus import NatsBus
from venom.daemon.settings import VenomConfig
from venom.daemon.supervisor import PluginProcesses, split
from venom.daemon.telemetry import Telemetry
from venom.plugins.host import PluginHost
from venom.plugins.registry import create_plugin, load_plugin_class
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import Codec, ConfigError, Message, Subjects

log = logging.getLogger("venom.run")

URL_FILE = "nats.url"


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
        settings = dict(
            config.plugins.settings.get(cls.name) or config.plugins.settings.get(spec) or {}
        )
        # --scenario / run.scenario reaches every plugin that has a scenario setting.
        if config.run.scenario and "scenario" in cls.config_type.__struct_fields__:
            settings.setdefault("scenario", config.run.scenario)
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

    With ``plugins.processes = N >= 1`` the pulse-answering plugins are split
    in N processes and each ledger-role plugin gets a process of its own
    (it drains the stream on SIGTERM, which the daemon sends after its last
    record is stored); with 0 every plugin runs in the daemon. Every name is
    checked here, before any process starts.
    """
    if config.plugins.processes == 0:
        for spec in config.plugins.run:
            load_plugin_class(spec)
        return list(config.plugins.run), []
    pulse: list[str] = []
    ledgers: list[list[str]] = []
    for spec in config.plugins.run:
        if load_plugin_class(spec).role == "ledger":
            ledgers.append([spec])
        else:
            pulse.append(spec)
    groups = split(pulse, config.plugins.processes) if pulse else []
    return [], groups + ledgers


async def connect(config: VenomConfig, url: str, name: str) -> NatsBus:
    """Connect to NATS with the credentials in ``config.nats``."""
    options: dict[str, Any] = {}
    if config.nats.user:
        options["user"] = config.nats.user
        options["password"] = config.nats.password
    if config.nats.token:
        options["token"] = config.nats.token
    if config.nats.credentials:
        options["user_credentials"] = config.nats.credentials
    return await NatsBus.connect(
        url, name=name, connect_timeout=config.nats.connect_timeout, options=options
    )


async def _watch_signals(on_stop: Any, scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
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


async def _live_line(arbiter: Arbiter, interval: float) -> None:
    tty = sys.stderr.isatty()
    while True:
        await anyio.sleep(interval)
        line = arbiter.stats.line(arbiter.beat, arbiter.scheduler.missed)
        if tty:
            sys.stderr.write("\r\x1b[2K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


async def run_daemon(
    config: VenomConfig,
    state_dir: Path,
    *,
    beats: int = 0,
    live: bool | None = None,
    telemetry: Telemetry | None = None,
) -> Arbiter | None:
    """Run the daemon until a signal (or ``beats`` beats); return the arbiter.

    A signal during start-up (server, plugin processes) undoes what was
    started and returns None; after it, the first signal finishes the beat
    and stops in order, a second one stops at once. ``telemetry`` (tests)
    replaces the providers ``[telemetry]`` asks for; the caller shuts it down.
    """
    live = config.run.live if live is None else live
    daemon = _Daemon(config, state_dir, telemetry)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, daemon.on_signal, tg.cancel_scope)
        with daemon.startup:
            await daemon.run(beats, live)
        tg.cancel_scope.cancel()
    return daemon.arbiter


class _Daemon:
    """What ``run_daemon`` starts, in order, and the signal that stops it."""

    def __init__(self, config: VenomConfig, state_dir: Path, telemetry: Telemetry | None) -> None:
        self.config = config
        self.state_dir = state_dir
        self.telemetry = telemetry
        self.arbiter: Arbiter | None = None
        self.startup = anyio.CancelScope()

    def on_signal(self) -> None:
        if self.arbiter is not None:
            self.arbiter.stop()
        else:
            log.info("stopping during start-up")
            self.startup.cancel()

    async def run(self, beats: int, live: bool) -> None:
        config, state_dir = self.config, self.state_dir
        codec = Codec(max_bytes=config.beat.max_reply_bytes)
        subjects = Subjects(config.nats.prefix)
        async with AsyncExitStack() as stack:
            telemetry = self.telemetry
            if telemetry is None:
                # Shut down last: after the connections drained (SPEC 5.4).
                telemetry = Telemetry.from_config(config.telemetry, role="arbiter", metrics=True)
                stack.callback(telemetry.shutdown)
            tracing = telemetry.tracer_provider
            url = config.nats.url
            if not url:
                emb = config.embedded
                server = await stack.enter_async_context(
                    EmbeddedServer(
                        state_dir,
                        host=emb.host,
                        port=emb.port,
                        jetstream=emb.jetstream,
                        server_path=emb.server_path,
                        start_timeout=emb.start_timeout,
                    )
                )
                url = server.url
                (state_dir / URL_FILE).write_text(url + "\n")
                stack.callback((state_dir / URL_FILE).unlink, missing_ok=True)
                log.info("embedded nats-server at %s (store %s)", url, state_dir)
            bus = await connect(config, url, "venom-arbiter")
            stack.push_async_callback(bus.close)
            local, remote = place_plugins(config)
            if local:
                plugin_bus = await connect(config, url, "venom-plugins")
                stack.push_async_callback(plugin_bus.close)
                plugins = build_plugins(local, config, plugin_bus, state_dir, codec, tracing)
                await stack.enter_async_context(
                    PluginHost(
                        plugins, plugin_bus, subjects=subjects, codec=codec, tracer_provider=tracing
                    )
                )
                log.info("hosting plugins: %s", ", ".join(p.name for p in plugins))
            if remote:
                await stack.enter_async_context(
                    PluginProcesses(remote, config, url, state_dir, bus)
                )
            publisher = BeatPublisher(bus, subjects, codec)
            await publisher.start()
            arbiter = self.arbiter = Arbiter(
                bus,
                config,
                codec=codec,
                record_sink=publisher,
                tracer_provider=tracing,
                meter_provider=telemetry.meter_provider,
            )
            publisher.trace = arbiter.trace
            async with anyio.create_task_group() as tg:
                if live:
                    tg.start_soon(_live_line, arbiter, config.run.live_interval)
                await arbiter.run(beats=beats)
                tg.cancel_scope.cancel()
            await publisher.flush()
            if live and sys.stderr.isatty():
                sys.stderr.write("\n")
            log.info(
                "stopped after %d beats: %s",
                arbiter.beat,
                arbiter.stats.line(arbiter.beat, arbiter.scheduler.missed),
            )


async def run_plugins(
    config: VenomConfig, names: list[str], url: str, state_dir: Path, *, parent: int = 0
) -> None:
    """Host ``names`` as their own process until SIGINT/SIGTERM (or ``parent`` exits).

    Signals are watched from the first moment: one that comes while the
    plugins start lets them finish starting and then stops them in order
    (a ledger restarted a moment before the daemon stops still drains the
    stream); a second one stops at once.
    """
    codec = Codec(max_bytes=config.beat.max_reply_bytes)
    stopped = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, stopped.set, tg.cancel_scope)
        if parent:
            tg.start_soon(_watch_parent, parent, stopped.set)
        await _host_until(config, names, url, state_dir, codec, stopped, supervised=bool(parent))
        tg.cancel_scope.cancel()


async def _host_until(
    config: VenomConfig,
    names: list[str],
    url: str,
    state_dir: Path,
    codec: Codec,
    stopped: anyio.Event,
    *,
    supervised: bool,
) -> None:
    telemetry = Telemetry.from_config(config.telemetry, role="plugin", metrics=False)
    tracing = telemetry.tracer_provider
    bus = await connect(config, url, f"venom-plugin-{'-'.join(names)}"[:60])
    try:
        plugins = build_plugins(names, config, bus, state_dir, codec, tracing)
        subjects = Subjects(config.nats.prefix)
        async with PluginHost(
            plugins, bus, subjects=subjects, codec=codec, tracer_provider=tracing
        ):
            log.info("plugin(s) %s answering on %s", ", ".join(p.name for p in plugins), url)
            # Start-up garbage (torch, numpy, the plugins) is permanent: keep the
            # collector from walking it while a pulse waits.
            gc.collect()
            gc.freeze()
            if supervised:  # tell `venom run` (see supervisor.py)
                sys.stdout.write("ready\n")
                sys.stdout.flush()
            await stopped.wait()
    finally:
        await bus.close()
        telemetry.shutdown()
