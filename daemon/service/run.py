"""``venom run``: the daemon around the arbiter.

:func:`run_daemon` starts the embedded nats-server when no URL is configured
(SPEC 5.2), connects the arbiter, hosts the configured plugins in-process on
their own NATS connection, or in supervised child processes
(``plugins.processes``; they talk over the real server either way), and runs
the beat loop. It behaves as a service (SPEC 5.4): ``READY=1`` to systemd
once the first beat closed, ``STATUS=`` lines and ``WATCHDOG=1`` from the
beat loop, the health endpoint, beats held while NATS or the beat stream
cannot be reached, SIGHUP reloads what can change live, and SIGINT/SIGTERM
stop in order: finish the beat, let the ledger store every record, stop the
plugins, drain the connections, shut down telemetry, stop the server.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.beat.leadership import Leadership
from venom.daemon.beat.period import t_lambda_from
from venom.daemon.bus.accounts import Names
from venom.daemon.bus.base import Bus
from venom.daemon.bus.beatstream import BeatPublisher
from venom.daemon.bus.credentials import load_credentials, login_for, write_server_config
from venom.daemon.bus.embedded import EmbeddedServer
from venom.daemon.bus.spill import NAME as SPILL_NAME
from venom.daemon.bus.spill import Spill
from venom.daemon.config.reload import reload_config
from venom.daemon.config.settings import VenomConfig
from venom.daemon.observe.logs import write_stderr
from venom.daemon.observe.providers import TelemetryProviders
from venom.daemon.service.lifecycle import Login, Process
from venom.daemon.service.statelock import StateLock
from venom.daemon.service.storedisk import StoreDisk
from venom.daemon.service.supervisor import PluginProcesses, plugin_class_names
from venom.daemon.service.worker import place_plugins
from venom.schemas import PluginStartError

log = logging.getLogger("venom.run")

URL_FILE = "nats.url"


async def _live_line(arbiter: Arbiter, interval: float) -> None:
    """The live status line, on a terminal only (a pipe or journald gets STATUS= and logs).

    Written through the log queue, so a terminal that does not keep up
    never holds the beat.
    """
    if not sys.stderr.isatty():
        return
    while True:
        await anyio.sleep(interval)
        write_stderr("\r\x1b[2K" + arbiter.snapshot().line())


async def run_daemon(
    config: VenomConfig,
    state_dir: Path,
    *,
    beats: int = 0,
    live: bool | None = None,
    telemetry: TelemetryProviders | None = None,
    reload: Callable[[], VenomConfig] | None = None,
    on_arbiter: Callable[[Arbiter], None] | None = None,
) -> Arbiter | None:
    """Run the daemon until a signal (or ``beats`` beats); return the arbiter.

    A signal during start-up (server, plugin processes) undoes what was
    started and returns None; after it, the first signal finishes the beat
    and stops in order, a second one stops at once. SIGHUP calls ``reload``
    (loads the config again) and applies the live keys. ``telemetry``
    (tests) replaces the providers ``[telemetry]`` asks for; the caller
    shuts it down. ``on_arbiter`` (benchmarks) is called with the arbiter
    before its first beat. Raises :class:`~venom.schemas.StateDirInUse`,
    before anything starts, while another daemon holds ``state_dir``.
    """
    live = config.run.live if live is None else live
    # Before anything starts: one daemon per state directory (and JetStream store).
    with StateLock(state_dir):
        daemon = _Daemon(config, state_dir, telemetry, reload)
        daemon.on_arbiter = on_arbiter

        async def body() -> None:
            with daemon.startup:
                await daemon.run(beats, live)

        await daemon.process.serve(body, daemon.on_signal, daemon.on_reload)
    if daemon.fatal:
        raise PluginStartError(daemon.fatal)
    return daemon.arbiter


class _Daemon:
    """What ``run_daemon`` starts, in order, and the signals that stop or reload it."""

    def __init__(
        self,
        config: VenomConfig,
        state_dir: Path,
        telemetry: TelemetryProviders | None,
        reload: Callable[[], VenomConfig] | None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.telemetry = telemetry
        self.reload = reload
        self.arbiter: Arbiter | None = None
        self.on_arbiter: Callable[[Arbiter], None] | None = None
        self.publisher: BeatPublisher | None = None
        #: The embedded nats-server (None with a configured URL).
        self.server: EmbeddedServer | None = None
        #: The embedded server's passwords by user (None: [nats]'s credentials apply).
        self.credentials: dict[str, str] | None = None
        #: The embedded server's store disk, watched while records wait (None: no server).
        self.disk: StoreDisk | None = None
        self.startup = anyio.CancelScope()
        #: Why the daemon cannot go on ("" while it can): a plugin process that keeps failing.
        self.fatal = ""
        self.process = Process(config, "arbiter", telemetry_role="arbiter")
        self.state = self.process.state
        self.state.readiness = self._readiness
        self.state.describe = self._describe
        self.state.details = self._details

    def on_signal(self) -> None:
        self.state.stop()
        if self.arbiter is not None:
            self.arbiter.stop()
        else:
            log.info("stopping during start-up")
            self.startup.cancel()

    def on_fatal(self, reason: str) -> None:
        self.fatal = reason
        self.on_signal()

    def on_plugins_ready(self) -> None:
        if self.arbiter is not None:
            self.arbiter.discover_soon()

    def on_reload(self) -> None:
        if self.reload is None:
            log.warning("SIGHUP: this daemon was not started from a config it can read again")
            return
        self.state.reloading()
        self.config, applied = reload_config(self.config, self.reload)
        if applied and self.arbiter is not None:
            self.arbiter.apply_config(self.config)
            if "run.log_level" in applied:
                logging.getLogger().setLevel(self.config.run.log_level.upper())
            log.info("%d change(s) apply from beat %d", len(applied), self.arbiter.beat + 1)
        self.state.reloaded()

    def _readiness(self) -> tuple[bool, str]:
        if self.arbiter is None:
            return False, "starting"
        return self.arbiter.readiness()

    def _describe(self) -> str:
        a = self.arbiter
        if a is None:
            return "starting"
        last = a.last_decision.action if a.last_decision else "-"
        paused = " | paused" if a.paused else ""
        return (
            f"beat {a.beat} | {a.stats.rate():.0f}/s | last {last} | "
            f"missed ticks {a.scheduler.missed}{paused}"
        )

    def _details(self) -> dict[str, object]:
        a = self.arbiter
        if a is None:
            return {}
        spill = self.publisher.spill if self.publisher is not None else None
        return {
            "beat": a.beat,
            "paused": a.paused,
            "holding": a.holding,
            "connected": a.bus.connected,
            "last_decision": a.last_decision.action if a.last_decision else None,
            "unstored_records": self.publisher.backlog if self.publisher is not None else 0,
            "spilled_records": spill.beats if spill is not None else 0,
            "disk_full": self.disk.full if self.disk is not None else "",
        }

    async def run(self, beats: int, live: bool) -> None:
        """Start everything in order, run the beats, stop in the reverse order."""
        config, process = self.config, self.process
        async with AsyncExitStack() as stack:
            telemetry = await process.open(stack, metrics=True, telemetry=self.telemetry)
            url = await self._server(stack, config, self.state_dir)
            bus = await process.connect(stack, url, "venom-arbiter", self._login("arbiter"))
            await self._plugins(stack, config, url, bus)
            spill = None
            if config.run.spill_mib:
                spill = Spill(self.state_dir / SPILL_NAME, config.run.spill_mib << 20)
                stack.callback(spill.close)
            publisher = self.publisher = BeatPublisher(
                bus, process.subjects, process.codec, spill=spill
            )
            tail = await publisher.start(
                replicas=config.nats.stream_replicas, records=config.pid.window
            )
            arbiter = self._arbiter(config, bus, publisher, telemetry)
            if arbiter.leadership is not None:
                log.info(
                    "standing by as epoch %s (HA): following %s", publisher.epoch, publisher.stream
                )
            elif tail.last is not None:
                arbiter.continue_after(tail.records)
                log.info(
                    "continuing %s after beat %d (written by epoch %s), as epoch %s",
                    publisher.stream,
                    tail.last.beat,
                    tail.epoch,
                    publisher.epoch,
                )
            await self._beats(arbiter, publisher, config, beats, live)

    async def _server(self, stack: AsyncExitStack, config: VenomConfig, state_dir: Path) -> str:
        """The NATS URL: the configured one, or the embedded server's, started here."""
        url = config.nats.url
        if url:
            return url
        emb = config.embedded
        extra_args: list[str] = []
        if emb.credentials:
            self.credentials = load_credentials(state_dir, create=True)
            names = Names.of(self.process.subjects, durable="*")  # any ledger's durable
            extra_args = ["-c", str(write_server_config(state_dir, names, self.credentials))]
        server = await stack.enter_async_context(
            EmbeddedServer(
                state_dir,
                host=emb.host,
                port=emb.port,
                jetstream=emb.jetstream,
                server_path=emb.server_path,
                start_timeout=emb.start_timeout,
                extra_args=extra_args,
            )
        )
        self.server = server
        url = server.url
        (state_dir / URL_FILE).write_text(url + "\n")
        stack.callback((state_dir / URL_FILE).unlink, missing_ok=True)
        log.info("embedded nats-server at %s (store %s)", url, state_dir)
        return url

    async def _plugins(
        self, stack: AsyncExitStack, config: VenomConfig, url: str, bus: Bus
    ) -> None:
        """The plugins: in-process ones on their own connection, then the processes."""
        local, remote = place_plugins(config)
        if local:
            login = self._login(login_for(plugin_class_names(local)))
            plugin_bus = await self.process.connect(stack, url, "venom-plugins", login)
            plugins = await self.process.host(stack, local, plugin_bus, self.state_dir)
            log.info("hosting plugins: %s", ", ".join(p.name for p in plugins))
        if remote:
            await stack.enter_async_context(
                PluginProcesses(
                    remote,
                    config,
                    url,
                    self.state_dir,
                    bus,
                    # Back-to-back runs promise determinism: every plugin from beat 1.
                    wait=config.beat.period == 0,
                    on_ready=self.on_plugins_ready,
                    on_fatal=self.on_fatal,
                    logins=self.credentials,
                )
            )

    def _login(self, user: str) -> Login | None:
        """The embedded server's ``user`` and password (None: ``[nats]``'s credentials)."""
        return (user, self.credentials[user]) if self.credentials is not None else None

    def _arbiter(
        self,
        config: VenomConfig,
        bus: Bus,
        publisher: BeatPublisher,
        telemetry: TelemetryProviders,
    ) -> Arbiter:
        """The arbiter, its records going to ``publisher``, held while it cannot store them."""
        leadership = None
        if config.ha.enabled:
            leadership = Leadership(
                bus,
                self.process.subjects,
                self.process.codec,
                publisher,
                standby=True,
                takeover_after=self._takeover_after,
                records=config.pid.window,
                announce_ttl=config.ha.announce_ttl,
            )
        arbiter = self.arbiter = Arbiter(
            bus,
            config,
            codec=self.process.codec,
            subjects=self.process.subjects,
            record_sink=publisher,
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            leadership=leadership,
        )
        publisher.trace = arbiter.trace
        arbiter.epoch = publisher.epoch
        arbiter.hold = self._hold
        arbiter.storage = lambda: self.disk.full if self.disk is not None else ""
        arbiter.on_turn = self.state.turn
        if self.on_arbiter is not None:
            self.on_arbiter(arbiter)
        return arbiter

    def _hold(self) -> str:
        """Why beats are held: the publisher's reason, and the full disk when there is one."""
        assert self.publisher is not None
        reason = self.publisher.hold_reason()
        if reason and self.disk is not None and self.disk.full:
            return f"{reason}: {self.disk.full}"
        return reason

    def _takeover_after(self) -> float:
        """``ha.takeover_after``, or 5 · the period in force (T_Λ when back to back)."""
        config = self.config
        if config.ha.takeover_after is not None:
            return config.ha.takeover_after
        period = self.arbiter.period if self.arbiter is not None else 0.0
        if period <= 0:
            period = t_lambda_from(config.beat, config.beat.k, config.beat.p)
        return 5 * period

    async def _beats(
        self,
        arbiter: Arbiter,
        publisher: BeatPublisher,
        config: VenomConfig,
        beats: int,
        live: bool,
    ) -> None:
        """Run the beats; on the way out, every decided beat reaches the stream."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(publisher.run)
            if self.server is not None:
                tg.start_soon(self.server.watch)
                self.disk = StoreDisk(self.server, publisher)
                tg.start_soon(self.disk.watch)
            if arbiter.leadership is not None:
                tg.start_soon(arbiter.leadership.announce)
            if live:
                tg.start_soon(_live_line, arbiter, config.run.live_interval)
            await arbiter.run(beats=beats)
            self.state.stop(f"stopping after beat {arbiter.beat}")
            # Every decided beat reaches the stream before anything stops.
            await publisher.flush()
            tg.cancel_scope.cancel()
        if live and sys.stderr.isatty():
            sys.stderr.write("\n")
        log.info(
            "stopped after %d beats: %s",
            arbiter.beat,
            arbiter.snapshot().line(),
        )
