"""The ledger as a plugin: ``venom run`` hosts it, ``venom plugin run ledger`` runs it alone.

It writes the Merkle log from the beat stream in the background and
answers each pulse with its size and lag (beats not yet in the log), which
the arbiter hands the R core as ``context.ledger_lag``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

from venom.plugins.ledger.store import LedgerStore
from venom.plugins.ledger.writer import LedgerConfig, LedgerWriter
from venom.plugins.sdk import Plugin
from venom.schemas import BusError, EstimateReply, PluginError, Pulse, Reply, Role

log = logging.getLogger("venom.ledger")


class LedgerPlugin(Plugin[LedgerConfig]):
    """Appends every beat record to the Merkle log in ``<state>/plugins/ledger``."""

    name: ClassVar[str] = "ledger"
    role: ClassVar[Role] = "ledger"
    version: ClassVar[str] = "1.0.0"
    config_type: ClassVar[type[LedgerConfig]] = LedgerConfig
    description: ClassVar[str] = "SHA3-256 Merkle log of beat records (from JetStream)"

    store: LedgerStore | None = None
    writer: LedgerWriter | None = None
    _task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        bus = self.context.bus
        if bus is None:
            raise PluginError("the ledger needs a NATS server with JetStream; it was given no bus")
        try:
            bus.jetstream()
        except BusError as exc:
            raise PluginError(f"the ledger needs a NATS server with JetStream: {exc}") from exc
        self.store = LedgerStore(self.context.state_dir)
        self.writer = LedgerWriter(
            bus,
            self.context.subjects,
            self.store,
            self.config,
            codec=self.context.codec,
            tracer_provider=self.context.tracer_provider,
        )
        log.info("ledger at %s: %d entries", self.context.state_dir, self.store.size)
        self._task = asyncio.get_running_loop().create_task(self.writer.run())
        self._task.add_done_callback(self._writer_done)

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Loud, and every later pulse gets an error reply: nothing is appended
            # (or acked) any more, so JetStream keeps the records for a restart.
            log.critical("ledger writer stopped: %s", task.exception())

    async def close(self) -> None:
        if self.writer is not None and self._task is not None:
            self.writer.stop()
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except Exception:
                log.exception("ledger writer did not finish cleanly")
        if self.store is not None:
            self.store.close()
            log.info(
                "ledger closed at %d entries, root %s",
                self.store.size,
                self.store.tree.root().hex(),
            )

    async def handle(self, pulse: Pulse) -> Reply:
        if self.writer is None or self.store is None:
            raise PluginError("ledger is not open")
        if self._task is not None and self._task.done() and self._task.exception():
            raise PluginError(f"ledger writer stopped: {self._task.exception()}")
        lag = max(0, pulse.beat - 1 - self.writer.last_beat)
        return EstimateReply(
            estimator=self.name, values={"size": float(self.store.size), "lag": float(lag)}
        )
