"""Scheduler accuracy: mean beat period over 1,000 beats at a fixed period.

Runs the real arbiter (no plugins, in-memory bus, so only the scheduler and
the beat's own work count) and reports the mean and spread of the interval
between beat starts. Target (issue 2): mean within 2 % of 5 ms.

    .venv/bin/python tests/bench/bench_scheduler.py [--period 0.005] [--beats 1000]
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import anyio

from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.memorybus import MemoryBus
from venom.daemon.config.settings import BeatConfig, PluginsConfig, RunConfig, VenomConfig
from venom.schemas import BeatRecord


async def measure(period: float, beats: int) -> dict[str, float]:
    starts: list[float] = []

    async def sink(record: BeatRecord) -> None:
        starts.append(record.pulse.issued_at)

    config = VenomConfig(
        beat=BeatConfig(period=period), plugins=PluginsConfig(run=[]), run=RunConfig(live=False)
    )
    bus = MemoryBus()
    arbiter = Arbiter(bus, config, record_sink=sink)
    await arbiter.run(beats=beats)
    await bus.close()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    mean = (starts[-1] - starts[0]) / (len(starts) - 1)
    return {
        "period_ms": period * 1e3,
        "beats": float(len(starts)),
        "mean_ms": mean * 1e3,
        "error_pct": (mean - period) / period * 100,
        "stdev_ms": statistics.stdev(gaps) * 1e3,
        "max_gap_ms": max(gaps) * 1e3,
        "missed_ticks": float(arbiter.scheduler.missed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", type=float, default=0.005)
    parser.add_argument("--beats", type=int, default=1000)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: F401

        options = {"use_uvloop": True}
    except ImportError:
        options = {}
    result = anyio.run(measure, args.period, args.beats, backend="asyncio", backend_options=options)
    for key, value in result.items():
        print(f"{key:>13}: {value:.4f}")


if __name__ == "__main__":
    main()
