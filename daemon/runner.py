"""``venom run`` and ``venom plugin run``: processes around the arbiter.

:func:`run_daemon` starts the embedded nats-server when no URL is configured
(SPEC 5.2), connects the arbiter, hosts the configured plugins in-process on
their own NATS connection (they talk over the real server, exactly as an
out-of-process plugin would), runs the beat loop and shuts down in order on
SIGINT/SIGTERM: finish the beat, stop the plugins, drain both connections,
stop the server.
"""

from __future__ import annotations

import logging
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from venom.daemon.arbiter import Arbiter
from venom.daemon.beatstream import BeatPublisher
from venom.daemon.bus import Bus
from venom.daemon.embedded import EmbeddedServer
from venom.daemon.natsbus import NatsBus
from venom.daemon.settings import VenomConfig
from venom.plugins.host import PluginHost
from venom.plugins.registry import load_plugin_class
from venom.plugins.sdk import Plugin, PluginContext
from venom.schemas import Codec, ConfigError, Message, Subjects

log = logging.getLogger("venom.run")

URL_FILE = "nats.url"


def build_plugins(
    names: list[str], config: VenomConfig, bus: Bus, state_dir: Path, codec: Codec
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
        )
        plugins.append(cls(plugin_config, context))
    seen: set[str] = set()
    for p in plugins:
        if p.name in seen:
            raise ConfigError(f"plugin {p.name!r} listed twice", key="plugins.run")
        seen.add(p.name)
    return plugins


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
    config: VenomConfig, state_dir: Path, *, beats: int = 0, live: bool | None = None
) -> Arbiter:
    """Run the daemon until a signal (or ``beats`` beats); return the arbiter."""
    codec = Codec(max_bytes=config.beat.max_reply_bytes)
    subjects = Subjects(config.nats.prefix)
    live = config.run.live if live is None else live
    async with AsyncExitStack() as stack:
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
        if config.plugins.run:
            plugin_bus = await connect(config, url, "venom-plugins")
            stack.push_async_callback(plugin_bus.close)
            plugins = build_plugins(config.plugins.run, config, plugin_bus, state_dir, codec)
            await stack.enter_async_context(
                PluginHost(plugins, plugin_bus, subjects=subjects, codec=codec)
            )
            log.info("hosting plugins: %s", ", ".join(p.name for p in plugins))

        publisher = BeatPublisher(bus, subjects, codec)
        await publisher.start()
        arbiter = Arbiter(bus, config, codec=codec, record_sink=publisher)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, arbiter.stop, tg.cancel_scope)
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
    return arbiter


async def run_plugins(config: VenomConfig, names: list[str], url: str, state_dir: Path) -> None:
    """Host ``names`` as their own process until SIGINT/SIGTERM."""
    codec = Codec(max_bytes=config.beat.max_reply_bytes)
    bus = await connect(config, url, f"venom-plugin-{'-'.join(names)}"[:60])
    try:
        plugins = build_plugins(names, config, bus, state_dir, codec)
        async with PluginHost(plugins, bus, subjects=Subjects(config.nats.prefix), codec=codec):
            log.info("plugin(s) %s answering on %s", ", ".join(p.name for p in plugins), url)
            stopped = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, stopped.set, tg.cancel_scope)
                await stopped.wait()
                tg.cancel_scope.cancel()
    finally:
        await bus.close()
