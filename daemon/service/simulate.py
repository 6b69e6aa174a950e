"""Run the loop in memory: the arbiter and the plugins on a :class:`MemoryBus`.

No server, no clock: beats run back to back and every plugin answers every
beat, so a simulation is a deterministic function of the config, the seed and
the scenario (SPEC 8). It records the pulses ``venom bench plugins`` times, and the
calibration and determinism tests drive; the same plugins run unchanged on
NATS under ``venom run``.

Plugins with the ``ledger`` role are left out (the ledger reads JetStream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.memorybus import MemoryBus
from venom.daemon.config.settings import VenomConfig
from venom.daemon.service.lifecycle import build_plugins
from venom.plugins.host import PluginHost
from venom.schemas import BeatRecord, Codec, Subjects, Telemetry


@dataclass
class Simulation:
    """What a run produced: every beat record."""

    records: list[BeatRecord] = field(default_factory=list)

    def actions(self) -> list[str]:
        return [r.decision.action for r in self.records]

    def telemetry(self, key: str, source: str = "optical-plant") -> list[float]:
        """One plant telemetry value per beat (NaN when the plant did not say)."""
        out: list[float] = []
        for r in self.records:
            reply = r.replies.get(source)
            value = reply.values.get(key) if isinstance(reply, Telemetry) else None
            out.append(float("nan") if value is None else value)
        return out


def simulation_config(config: VenomConfig) -> VenomConfig:
    """``config`` with back-to-back beats and no discovery churn."""
    beat = msgspec.structs.replace(
        config.beat, period=0.0, discovery_interval=3600.0, discovery_timeout=0.05
    )
    run = msgspec.structs.replace(config.run, live=False)
    return msgspec.structs.replace(config, beat=beat, run=run)


async def simulate(config: VenomConfig, beats: int, state_dir: Path) -> Simulation:
    """Run ``beats`` beats of ``config``'s plugins (ledger aside) in memory."""
    config = simulation_config(config)
    codec = Codec(max_bytes=config.beat.max_reply_bytes)
    subjects = Subjects(config.nats.prefix)
    bus = MemoryBus()
    names = list(config.plugins.run)
    built = build_plugins(names, config, bus, state_dir, codec, subjects)
    plugins = [p for p in built if p.role != "ledger"]
    result = Simulation()

    async def sink(record: BeatRecord) -> None:
        result.records.append(record)

    try:
        async with PluginHost(plugins, bus, subjects=subjects, codec=codec):
            arbiter = Arbiter(bus, config, codec=codec, subjects=subjects, record_sink=sink)
            await arbiter.run(beats=beats)
    finally:
        await bus.close()
    return result
