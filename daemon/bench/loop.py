"""``venom bench``: the beat loop against a raw nats-py scatter-gather.

For each N, in the same process, on the same server and event loop:

- **venom, one host**: the real :class:`Arbiter` (back-to-back beats,
  decision and beat record published every beat) with N no-op plugins in
  one host on a second connection, answering with one ReplyBatch a beat;
- **venom, alone**: the same with each plugin answering alone, as N
  single-plugin processes would (the same messages as raw);
- **raw**: the same exchange written directly against nats-py: one request
  on a subject, N responders in N queue groups, wait for N replies, repeat.
  The bytes on the wire are the same as venom's (a pulse-sized payload with
  the ``Venom-Beat`` header; replies with the ``Venom-Plugin`` header), so
  the ratio measures venom's own work, not a different message shape.

Rounds alternate venom/raw so machine drift hits both; the best round of
each is reported with its p50/p99 beat time, and the ratio venom/raw.
"""

from __future__ import annotations

import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio
import msgspec
import nats
from nats.aio.client import Client

from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.embedded import EmbeddedServer
from venom.daemon.bus.natsbus import NatsBus
from venom.daemon.config.settings import BeatConfig, PluginsConfig, RunConfig, VenomConfig
from venom.daemon.observe.percentiles import percentile
from venom.plugins.host import PluginHost
from venom.plugins.noop import noop_class
from venom.schemas import BeatRecord, Codec, EstimateReply, Pulse, Subjects


async def bench_venom(
    url: str, n: int, duration: float, prefix: str, *, batch: bool = True
) -> dict[str, float]:
    """Beats/s and beat-time percentiles of the real arbiter with N no-op plugins.

    ``batch``: the N plugins in one host (one ReplyBatch a beat); otherwise
    each answers alone, as N single-plugin processes would.
    """
    config = VenomConfig(
        beat=BeatConfig(
            period=0.0, back_to_back_deadline=1.0, discovery_interval=3600.0, discovery_timeout=0.5
        ),
        plugins=PluginsConfig(run=[]),
        run=RunConfig(live=False),
    )
    config = msgspec.structs.replace(
        config, nats=msgspec.structs.replace(config.nats, prefix=prefix)
    )
    subjects = Subjects(prefix)
    codec = Codec()
    async with AsyncExitStack() as stack:
        bus = await NatsBus.connect(url, name="bench-arbiter")
        stack.push_async_callback(bus.close)
        plugin_bus = await NatsBus.connect(url, name="bench-plugins")
        stack.push_async_callback(plugin_bus.close)
        plugins = [noop_class(f"noop-{i}")() for i in range(n)]
        await stack.enter_async_context(
            PluginHost(plugins, plugin_bus, subjects=subjects, codec=codec, batch=batch)
        )
        await plugin_bus.flush()

        async def sink(record: BeatRecord) -> None:
            await bus.publish(subjects.beat, codec.encode(record))

        arbiter = Arbiter(bus, config, codec=codec, record_sink=sink)
        async with anyio.create_task_group() as tg:
            await tg.start(arbiter.run)
            if len(arbiter.discovery.plugins) != n:
                raise RuntimeError(f"discovery saw {len(arbiter.discovery.plugins)} of {n}")
            await anyio.sleep(0.2)  # warm-up
            b0, t0 = arbiter.beat, time.perf_counter()
            arbiter.stats.durations.clear()
            await anyio.sleep(duration)
            b1, t1 = arbiter.beat, time.perf_counter()
            durations = list(arbiter.stats.durations)
            arbiter.stop()
        return _result((b1 - b0) / (t1 - t0), durations, missing=float(arbiter.stats.missing))


async def bench_raw(url: str, n: int, duration: float, prefix: str) -> dict[str, float]:
    """The same scatter-gather written directly with nats-py."""
    requester = await nats.connect(url, name="bench-raw-requester")
    responders = await nats.connect(url, name="bench-raw-responders")
    subject = f"{prefix}.raw"
    payload = msgspec.json.encode(EstimateReply(estimator="noop"))
    request = msgspec.json.encode(
        Pulse(beat=1, issued_at=time.time(), deadline=time.time(), t_lambda=0.0, seed=1)
    )
    try:
        await _start_raw_responders(responders, subject, prefix, n, payload)
        inbox = requester.new_inbox()
        gather = _RawGather(n)
        await requester.subscribe(f"{inbox}.*", cb=gather.on_reply)
        await requester.flush()
        beats, elapsed, durations = await _time_raw_beats(
            requester, subject, request, inbox, gather, duration
        )
        return _result(beats / elapsed, durations, missing=0.0)
    finally:
        await requester.drain()
        await responders.drain()


async def _start_raw_responders(
    responders: Client, subject: str, prefix: str, n: int, payload: bytes
) -> None:
    """N responders on ``subject``, each in its own queue group, answering as plugin noop-i."""
    for i in range(n):

        async def respond(msg: Any, _name: str = f"noop-{i}") -> None:
            await responders.publish(msg.reply, payload, headers={"Venom-Plugin": _name})

        await responders.subscribe(subject, queue=f"{prefix}.noop-{i}", cb=respond)
    await responders.flush()


class _RawGather:
    """Counts the replies to the current beat; ``done`` is set once all N are in."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.beat = 0
        self.got = 0
        self.done = anyio.Event()

    def next_beat(self) -> int:
        """Start gathering the replies to the next beat; its number."""
        self.beat += 1
        self.got = 0
        self.done = anyio.Event()
        return self.beat

    async def on_reply(self, msg: Any) -> None:
        """A reply on ``<inbox>.<beat>``: counted when it answers the current beat."""
        if int(msg.subject.rsplit(".", 1)[1]) != self.beat:
            return
        self.got += 1
        if self.got >= self.n:
            self.done.set()


async def _time_raw_beats(
    requester: Client,
    subject: str,
    request: bytes,
    inbox: str,
    gather: _RawGather,
    duration: float,
) -> tuple[int, float, list[float]]:
    """Beats back to back for 0.2 s of warm-up and ``duration`` s timed: (beats, seconds, times)."""
    durations: list[float] = []
    stop_at = time.perf_counter() + duration + 0.2
    warm_until = time.perf_counter() + 0.2
    beats = 0
    t_start = 0.0
    while True:
        t0 = time.perf_counter()
        if t0 >= stop_at:
            break
        if t0 >= warm_until and not t_start:
            t_start = t0
        beat = gather.next_beat()
        await requester.publish(
            subject,
            request,
            reply=f"{inbox}.{beat}",
            headers={"Venom-Beat": str(beat)},
        )
        with anyio.move_on_after(1.0):
            await gather.done.wait()
        if t_start:
            beats += 1
            durations.append(time.perf_counter() - t0)
    return beats, time.perf_counter() - t_start, durations


def _result(beats_per_s: float, durations: list[float], *, missing: float) -> dict[str, float]:
    """One side's measurement: its rate and the p50/p99 of its beat times in ms."""
    return {
        "beats_per_s": beats_per_s,
        "p50_ms": percentile(durations, 50, 0.0) * 1e3,
        "p99_ms": percentile(durations, 99, 0.0) * 1e3,
        "missing": missing,
    }


async def run_bench(
    sizes: list[int], duration: float = 3.0, rounds: int = 2, url: str | None = None
) -> list[dict[str, Any]]:
    """Run both sides for every N; return one result dict per N."""
    results = []
    async with AsyncExitStack() as stack:
        if not url:
            tmp = stack.enter_context(TemporaryDirectory(prefix="venom-bench-"))
            server = await stack.enter_async_context(EmbeddedServer(Path(tmp), jetstream=False))
            url = server.url
        for n in sizes:
            venom_runs, alone_runs, raw_runs = [], [], []
            for r in range(rounds):
                venom_runs.append(await bench_venom(url, n, duration, f"bench{n}v{r}"))
                alone_runs.append(await bench_venom(url, n, duration, f"bench{n}a{r}", batch=False))
                raw_runs.append(await bench_raw(url, n, duration, f"bench{n}r{r}"))
            best_v = max(venom_runs, key=lambda x: x["beats_per_s"])
            best_a = max(alone_runs, key=lambda x: x["beats_per_s"])
            best_r = max(raw_runs, key=lambda x: x["beats_per_s"])
            results.append(
                {
                    "n": n,
                    "venom": best_v,
                    "alone": best_a,
                    "raw": best_r,
                    "ratio": best_v["beats_per_s"] / best_r["beats_per_s"],
                    "ratio_alone": best_a["beats_per_s"] / best_r["beats_per_s"],
                    "ratio_median": statistics.median(
                        v["beats_per_s"] / w["beats_per_s"]
                        for v, w in zip(venom_runs, raw_runs, strict=True)
                    ),
                    "ratio_alone_median": statistics.median(
                        v["beats_per_s"] / w["beats_per_s"]
                        for v, w in zip(alone_runs, raw_runs, strict=True)
                    ),
                    "rounds": rounds,
                    "duration_s": duration,
                }
            )
    return results


def format_results(results: list[dict[str, Any]]) -> str:
    """A table of bench results: venom in one host, venom each plugin alone, raw nats-py."""
    lines = [
        f"{'N':>4}  {'host beats/s':>12} {'p50 ms':>7} {'p99 ms':>7}   "
        f"{'alone beats/s':>13} {'p50 ms':>7}   {'raw beats/s':>11} {'p50 ms':>7} {'p99 ms':>7}   "
        f"{'host/raw':>8} {'alone/raw':>9}"
    ]
    for r in results:
        v, a, w = r["venom"], r["alone"], r["raw"]
        lines.append(
            f"{r['n']:>4}  {v['beats_per_s']:>12.0f} {v['p50_ms']:>7.3f} {v['p99_ms']:>7.3f}   "
            f"{a['beats_per_s']:>13.0f} {a['p50_ms']:>7.3f}   "
            f"{w['beats_per_s']:>11.0f} {w['p50_ms']:>7.3f} {w['p99_ms']:>7.3f}   "
            f"{r['ratio']:>8.2f} {r['ratio_alone']:>9.2f}"
        )
    return "\n".join(lines)
