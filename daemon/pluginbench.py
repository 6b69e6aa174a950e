"""``venom bench plugins`` and ``venom bench daemon``: the default set's cost.

- **plugins**: per-plugin handler time. The default set runs the scenario
  in memory once to record realistic pulses (the plant's telemetry, the
  previous decisions); then each plugin, a fresh instance on its own, is fed
  those pulses one at a time and timed from the pulse's bytes to the reply's
  bytes (decode, handle, encode), the model with its labels as on the bus.
- **daemon**: the whole thing as ``venom run`` runs it (embedded server,
  worker processes, ledger) at the default T_Λ for N beats: beats/s, missed
  ticks, late and missing replies, beat-time percentiles.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import msgspec

from venom.daemon.bench import percentile
from venom.daemon.memorybus import MemoryBus
from venom.daemon.runner import build_plugins, run_daemon
from venom.daemon.settings import VenomConfig
from venom.daemon.simulate import simulate
from venom.plugins.sensors.scenario import load_scenario
from venom.schemas import Codec, Label, Pulse


async def bench_plugins(config: VenomConfig, beats: int) -> list[dict[str, Any]]:
    """Handler time of each plugin of ``config`` over ``beats`` recorded pulses."""
    scenario = load_scenario(config.run.scenario or "default")
    codec = Codec(max_bytes=config.beat.max_reply_bytes)
    decode = codec.decoder(Pulse).decode
    with TemporaryDirectory(prefix="venom-bench-") as tmp:
        sim = await simulate(config, beats, Path(tmp) / "record")
        pulses = [codec.encode(r.pulse) for r in sim.records]
        results: list[dict[str, Any]] = []
        names = list(config.plugins.run)
        for i, name in enumerate(names):
            bus = MemoryBus()
            (plugin,) = build_plugins([name], config, bus, Path(tmp) / f"p{i}", codec)
            if plugin.role == "ledger":
                await bus.close()
                continue
            times: list[float] = []
            async with plugin:
                for data in pulses:
                    t0 = time.perf_counter_ns()
                    pulse = decode(data)
                    codec.encode(await plugin.handle(pulse))
                    times.append((time.perf_counter_ns() - t0) / 1e3)
                    if plugin.mesh:
                        label = 1 if scenario.active(pulse.beat) else 0
                        await plugin.on_mesh(Label(beat=pulse.beat, label=label))
            await bus.close()
            results.append(
                {
                    "plugin": plugin.name,
                    "role": plugin.role,
                    "beats": len(times),
                    "p50_us": round(percentile(times, 50), 1),
                    "p99_us": round(percentile(times, 99), 1),
                    "mean_us": round(statistics.fmean(times), 1),
                }
            )
    results.sort(key=lambda r: -float(r["p50_us"]))
    return results


def format_plugin_results(results: list[dict[str, Any]]) -> str:
    lines = [f"{'plugin':<18} {'role':<10} {'p50 µs':>9} {'p99 µs':>9} {'mean µs':>9}"]
    for r in results:
        lines.append(
            f"{r['plugin']:<18} {r['role']:<10} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f}"
            f" {r['mean_us']:>9.1f}"
        )
    total = sum(float(r["mean_us"]) for r in results)
    lines.append(f"{'sum of means':<29} {'':>9} {'':>9} {total:>9.1f}")
    return "\n".join(lines)


async def bench_daemon(config: VenomConfig, beats: int) -> dict[str, Any]:
    """Run the daemon as ``venom run`` does for ``beats`` beats; its figures."""
    config = msgspec.structs.replace(
        config, run=msgspec.structs.replace(config.run, live=False, state_dir="")
    )
    with TemporaryDirectory(prefix="venom-bench-") as tmp:
        t0 = time.monotonic()
        arbiter = await run_daemon(config, Path(tmp), beats=beats, live=False)
        wall = time.monotonic() - t0
    if arbiter is None:
        raise RuntimeError("the daemon was stopped during start-up")
    stats = arbiter.stats
    return {
        "beats": arbiter.beat,
        "period_ms": round(arbiter.period * 1e3, 3),
        "k": arbiter.k,
        "P": arbiter.p,
        "beats_per_s": round(stats.mean_rate(), 1),
        "missed_ticks": arbiter.scheduler.missed,
        "late_replies": stats.late,
        "missing_replies": stats.missing,
        "beat_p50_ms": round(stats.percentile(50) * 1e3, 3),
        "beat_p99_ms": round(stats.percentile(99) * 1e3, 3),
        "wall_s": round(wall, 1),
    }


def format_daemon_results(r: dict[str, Any]) -> str:
    return (
        f"{r['beats']} beats at T_Λ = {r['period_ms']} ms (k={r['k']}, P={r['P']}), "
        f"{r['beats_per_s']} beats/s: "
        f"missed ticks {r['missed_ticks']}, late replies {r['late_replies']}, "
        f"missing {r['missing_replies']}, beat p50 {r['beat_p50_ms']} ms "
        f"p99 {r['beat_p99_ms']} ms (last 4,096 beats), {r['wall_s']} s in all"
    )
