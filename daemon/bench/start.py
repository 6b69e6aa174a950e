"""``venom bench startup``: how long ``venom run`` takes to beat, from a cold start.

Each run starts a real ``venom run`` (embedded nats-server, the configured
plugins in their worker processes, the ledger) on a fresh state directory,
follows its beat records on ``<prefix>.beat`` as any NATS client could, and
stops it (SIGTERM) once a beat has heard from every configured plugin, or
after ``timeout`` seconds. The figures, in seconds after the command was
started, come from the artefacts themselves:

- **server**: the embedded server's URL file is written;
- **first beat**: ``issued_at`` of beat 1, read back from the ledger;
- **all plugins**: ``issued_at`` of the beat by which every configured
  plugin has replied at least once (a plugin that is still starting is
  missing from the beats before, as in any later beat; whether they all
  make every deadline is ``venom bench daemon``'s question).

Absolute figures depend on the machine; compare two commits in one run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import anyio

from venom.daemon.bus.natsbus import NatsBus
from venom.daemon.config.settings import VenomConfig
from venom.daemon.service.run import URL_FILE
from venom.plugins.ledger.entry import parse_entry
from venom.plugins.ledger.store import LedgerStore
from venom.schemas import BeatRecord, BenchError, Codec, Subjects

FIGURES = ("server", "first_beat", "all_plugins")


_POLL = 0.005


def bench_startup(
    config: VenomConfig,
    config_path: str | None,
    runs: int,
    *,
    venom: str = "",
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Start ``venom run`` ``runs`` times; each figure's runs, median, min and max.

    ``venom`` names another installation's ``venom`` command to measure (an
    older commit beside this one, say); by default this one's.
    """
    command = [venom] if venom else [sys.executable, "-m", "venom.daemon"]
    samples: list[dict[str, float]] = []
    for _ in range(runs):
        with TemporaryDirectory(prefix="venom-startbench-") as tmp:
            samples.append(_one_start(command, config, config_path, Path(tmp), timeout))
    out: dict[str, Any] = {
        "venom": " ".join(command),
        "runs": runs,
        "plugins": len(config.plugins.run),
    }
    for name in FIGURES:
        values = [s[name] for s in samples if name in s]
        out[name] = {
            "runs": [round(v, 3) for v in values],
            "median": round(statistics.median(values), 3) if values else None,
            "min": round(min(values), 3) if values else None,
            "max": round(max(values), 3) if values else None,
        }
    return out


def format_startup_results(r: dict[str, Any]) -> str:
    lines = [f"{r['venom']} run from a cold start, {r['runs']} run(s), {r['plugins']} plugins (s):"]
    labels = {
        "server": "embedded server up",
        "first_beat": "first beat",
        "all_plugins": "every plugin answering",
    }
    for name in FIGURES:
        f = r[name]
        if f["median"] is None:
            lines.append(f"  {labels[name]:<24} not reached")
        else:
            lines.append(
                f"  {labels[name]:<24} median {f['median']:6.2f}  min {f['min']:6.2f}"
                f"  max {f['max']:6.2f}"
            )
    return "\n".join(lines)


def _one_start(
    command: list[str], config: VenomConfig, config_path: str | None, state: Path, timeout: float
) -> dict[str, float]:
    cmd = [*command, "run", "--state-dir", str(state), "--no-live"]
    if config_path:
        cmd += ["--config", config_path]
    env = {**os.environ, "VENOM_LOG_LEVEL": "warning"}
    log_path = state / "startbench.log"
    figures: dict[str, float] = {}
    with log_path.open("wb") as log:
        t0 = time.time()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
        )
        try:
            url = _wait_for_url(state / URL_FILE, proc, t0 + timeout, log_path)
            figures["server"] = (state / URL_FILE).stat().st_mtime - t0
            anyio.run(_until_all_answer, url, config, t0 + timeout)
        finally:
            _stop(proc)
    _read_ledger(state, len(config.plugins.run), t0, figures)
    return figures


def _wait_for_url(path: Path, proc: subprocess.Popen[bytes], deadline: float, log: Path) -> str:
    while not path.exists():
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise BenchError(f"venom run exited with {proc.returncode}: {' '.join(tail)}")
        if time.time() > deadline:
            raise BenchError("venom run wrote no server URL in time")
        time.sleep(_POLL)
    while not (url := path.read_text().strip()):
        time.sleep(_POLL)
    return url


async def _until_all_answer(url: str, config: VenomConfig, deadline: float) -> None:
    """Follow ``<prefix>.beat`` until every plugin has replied in some beat (or the deadline)."""
    subjects = Subjects(config.nats.prefix)
    decode = Codec(max_bytes=config.beat.max_reply_bytes).decoder(BeatRecord).decode
    wanted = len(config.plugins.run)
    done = anyio.Event()
    heard: set[str] = set()
    bus = await NatsBus.connect(url, name="venom-startbench", initial_attempts=50)

    async def on_record(msg: Any) -> None:
        heard.update(decode(msg.data).replies)
        if len(heard) >= wanted:
            done.set()

    try:
        await bus.subscribe(subjects.beat, on_record)
        with anyio.move_on_after(max(0.0, deadline - time.time())):
            await done.wait()
    finally:
        await bus.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


def _read_ledger(state: Path, wanted: int, t0: float, figures: dict[str, float]) -> None:
    directory = state / "plugins" / "ledger"
    if not directory.exists():
        return
    heard: set[str] = set()
    with LedgerStore(directory, readonly=True) as store:
        for index in range(store.size):
            record = parse_entry(store.read(index), index).record
            if index == 0:
                figures["first_beat"] = record.pulse.issued_at - t0
            heard.update(record.replies)
            if len(heard) >= wanted:
                figures["all_plugins"] = record.pulse.issued_at - t0
                return
