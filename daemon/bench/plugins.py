"""``venom bench plugins`` and ``venom bench daemon``: the default set's cost.

- **plugins**: per-plugin handler time. The default set runs the scenario
  in memory once to record realistic pulses (the plant's telemetry, the
  previous decisions); then each plugin, a fresh instance on its own, is fed
  those pulses one at a time and timed from the decoded pulse to the reply's
  bytes (handle, encode), the model with its labels as on the bus. Decoding
  the pulse is timed on its own (the first row): a host does it once per
  beat for all its plugins.
- **daemon**: the whole thing as ``venom run`` runs it (embedded server,
  worker processes, ledger) at the default T_Λ for N beats: beats/s, missed
  ticks, late and missing replies, beat-time percentiles, and CPU
  milliseconds per beat of each process (from ``/proc``) and their sum.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio
import msgspec

from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bench import proccpu
from venom.daemon.bus.memorybus import MemoryBus
from venom.daemon.config.settings import VenomConfig
from venom.daemon.observe.percentiles import percentile
from venom.daemon.service.lifecycle import build_plugins
from venom.daemon.service.run import run_daemon
from venom.daemon.service.simulate import simulate
from venom.plugins.sensors.scenario import load_scenario
from venom.schemas import Codec, Label, Pulse, Subjects

#: The first row of ``venom bench plugins``: decoding the pulse, once per host per beat.
DECODE_ROW = "(pulse decode)"


async def bench_plugins(config: VenomConfig, beats: int) -> list[dict[str, Any]]:
    """Handler time of each plugin of ``config`` over ``beats`` recorded pulses."""
    scenario = load_scenario(config.run.scenario or "default")
    codec = Codec(max_bytes=config.beat.max_reply_bytes)
    decode = codec.decoder(Pulse).decode
    with TemporaryDirectory(prefix="venom-bench-") as tmp:
        sim = await simulate(config, beats, Path(tmp) / "record")
        pulses = [codec.encode(r.pulse) for r in sim.records]
        # A host decodes each pulse once for all its plugins: timed on its own.
        decoding: list[float] = []
        for data in pulses:
            t0 = time.perf_counter_ns()
            decode(data)
            decoding.append((time.perf_counter_ns() - t0) / 1e3)
        results: list[dict[str, Any]] = [_row(DECODE_ROW, "host", decoding)]
        names = list(config.plugins.run)
        for i, name in enumerate(names):
            bus = MemoryBus()
            (plugin,) = build_plugins(
                [name], config, bus, Path(tmp) / f"p{i}", codec, Subjects(config.nats.prefix)
            )
            if plugin.role == "ledger":
                await bus.close()
                continue
            times: list[float] = []
            async with plugin:
                for data in pulses:
                    pulse = decode(data)
                    t0 = time.perf_counter_ns()
                    codec.encode(await plugin.handle(pulse))
                    times.append((time.perf_counter_ns() - t0) / 1e3)
                    if plugin.mesh:
                        label = 1 if scenario.active(pulse.beat) else 0
                        await plugin.on_mesh(Label(beat=pulse.beat, label=label))
            await bus.close()
            results.append(_row(plugin.name, plugin.role, times))
    results.sort(key=lambda r: (r["plugin"] != DECODE_ROW, -float(r["p50_us"])))
    return results


def _row(name: str, role: str, times: list[float]) -> dict[str, Any]:
    return {
        "plugin": name,
        "role": role,
        "beats": len(times),
        "p50_us": round(percentile(times, 50, 0.0), 1),
        "p99_us": round(percentile(times, 99, 0.0), 1),
        "mean_us": round(statistics.fmean(times), 1),
    }


def format_plugin_results(results: list[dict[str, Any]]) -> str:
    lines = [f"{'plugin':<18} {'role':<10} {'p50 µs':>9} {'p99 µs':>9} {'mean µs':>9}"]
    for r in results:
        lines.append(
            f"{r['plugin']:<18} {r['role']:<10} {r['p50_us']:>9.1f} {r['p99_us']:>9.1f}"
            f" {r['mean_us']:>9.1f}"
        )
    total = sum(float(r["mean_us"]) for r in results)
    lines.append(f"{'sum of means (one host)':<29} {'':>9} {'':>9} {total:>9.1f}")
    return "\n".join(lines)


async def bench_daemon(config: VenomConfig, beats: int) -> dict[str, Any]:
    """Run the daemon as ``venom run`` does for ``beats`` beats; its figures.

    CPU per beat is measured from the first beat at which every configured
    plugin is live (start-up, torch's import included, is not a beat's cost)
    to the last one, from ``/proc``, for each process.
    """
    config = msgspec.structs.replace(
        config, run=msgspec.structs.replace(config.run, live=False, state_dir="")
    )
    held: list[Arbiter] = []
    window = _CpuWindow(len(config.plugins.run), beats)
    with TemporaryDirectory(prefix="venom-bench-") as tmp:
        t0 = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(window.watch, held)
            arbiter = await run_daemon(
                config, Path(tmp), beats=beats, live=False, on_arbiter=held.append
            )
            tg.cancel_scope.cancel()
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
        "expected_replies": stats.expected,
        "beat_p50_ms": round(stats.percentile(50) * 1e3, 3),
        "beat_p99_ms": round(stats.percentile(99) * 1e3, 3),
        "wall_s": round(wall, 1),
        **window.figures(),
    }


class _CpuWindow:
    """Samples every process's CPU time while the daemon beats (see bench_daemon).

    The figures need two samples: the first beat with every plugin live, and
    the last one taken before the daemon's last beat (after it the plugin
    processes stop). Sampling costs the arbiter's process CPU inside the
    window, so between the two it samples only every :attr:`SPARSE` seconds
    (in case the beats stall) and then every :attr:`POLL` seconds once the
    end is :attr:`NEAR` seconds away at the rate so far.
    """

    POLL = 0.25
    SPARSE = 2.0
    NEAR = 1.0

    def __init__(self, plugins: int, beats: int) -> None:
        self.plugins = plugins
        self.beats = beats
        self.first: tuple[int, dict[int, float]] | None = None
        self.last: tuple[int, dict[int, float]] | None = None
        self.labels: dict[int, str] = {}
        self.samples = 0

    def _sample(self, beat: int) -> tuple[int, dict[int, float]]:
        cpu = proccpu.sample()
        self.samples += 1
        for pid in cpu.keys() - self.labels.keys():
            self.labels[pid] = "arbiter" if pid == os.getpid() else proccpu.label(pid)
        return beat, cpu

    async def watch(self, held: list[Arbiter]) -> None:
        clock = time.monotonic
        started = sampled = 0.0
        while True:
            await anyio.sleep(self.POLL)
            if not held or held[0].beat < 1:
                continue
            arbiter = held[0]
            beat = arbiter.beat
            if self.first is None:
                if len(arbiter.discovery.live()) >= self.plugins:
                    self.first = self._sample(beat)
                    started = sampled = clock()
                continue
            if beat >= self.beats or arbiter.stopping():
                continue  # the last beat is near or done: the plugins may be stopping
            now = clock()
            rate = (beat - self.first[0]) / max(now - started, 1e-9)
            near = rate > 0 and (self.beats - beat) / rate <= self.NEAR
            if near or now - sampled >= self.SPARSE:
                # Not the last beat: after it the plugin processes are stopped.
                self.last = self._sample(beat)
                sampled = now

    def figures(self) -> dict[str, Any]:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return {"cpu_beats": 0, "cpu_ms_per_beat": {}, "cpu_ms_per_beat_total": 0.0}
        beats = self.last[0] - self.first[0]
        spent = proccpu.per_process(self.first[1], self.last[1], self.labels)
        per_beat = {k: round(v * 1e3 / beats, 3) for k, v in sorted(spent.items())}
        return {
            "cpu_beats": beats,
            "cpu_ms_per_beat": per_beat,
            "cpu_ms_per_beat_total": round(sum(spent.values()) * 1e3 / beats, 3),
        }


def format_daemon_results(r: dict[str, Any]) -> str:
    expected = max(1, int(r.get("expected_replies", 0)))
    lines = [
        f"{r['beats']} beats at T_Λ = {r['period_ms']} ms (k={r['k']}, P={r['P']}), "
        f"{r['beats_per_s']} beats/s: "
        f"missed ticks {r['missed_ticks']}; of {r.get('expected_replies', 0)} expected replies "
        f"{r['missing_replies']} missing ({100 * r['missing_replies'] / expected:.3f} %), "
        f"{r['late_replies']} late ({100 * r['late_replies'] / expected:.3f} %); "
        f"beat p50 {r['beat_p50_ms']} ms p99 {r['beat_p99_ms']} ms (last 4,096 beats), "
        f"{r['wall_s']} s in all"
    ]
    if r.get("cpu_beats"):
        lines.append(f"CPU per beat over {r['cpu_beats']} beats with every plugin live:")
        for name, ms in r["cpu_ms_per_beat"].items():
            lines.append(f"  {ms:8.3f} ms  {name}")
        lines.append(f"  {r['cpu_ms_per_beat_total']:8.3f} ms  all processes")
    return "\n".join(lines)
