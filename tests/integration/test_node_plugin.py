"""A plugin in another language: the Node.js guard of ops/examples/node-guard.

The example is copied to a temporary directory, installed with ``npm ci`` and
run as ``node guard.mjs`` against the session nats-server; an in-process
arbiter must discover it (ADR-32 ``$SRV.INFO`` metadata), wait for its
``GuardVerdict`` every beat, and quarantine on its critical veto once the
telemetry feature it watches goes above the limit. A malformed pulse gets the
NATS micro error headers and the process carries on and exits 0 on SIGTERM.

Skipped only when ``node``/``npm`` are missing or ``npm ci`` fails (no
registry): the wire protocol is what is tested here, not npm.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from tests.helpers import make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.natsbus import NatsBus
from venom.schemas import (
    HDR_PLUGIN,
    HDR_SERVICE_ERROR,
    HDR_SERVICE_ERROR_CODE,
    BeatRecord,
    Codec,
    GuardVerdict,
    Pulse,
    Subjects,
    Telemetry,
)

# npm ci may take up to its own 120 s on a cold cache: more than the default timeout.
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "ops" / "examples" / "node-guard"
PREFIX = "nodeplug"
NAME = "node-guard"
LIMIT = 80.0


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@pytest.fixture
def node_guard_dir(tmp_path: Path) -> Path:
    """The example, copied without node_modules and installed with ``npm ci``."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node or npm is not on PATH")
    work = tmp_path / "node-guard"
    shutil.copytree(EXAMPLE, work, ignore=shutil.ignore_patterns("node_modules"))
    try:
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.skip(f"npm ci timed out after 120 s: {_tail(err)}")
    if done.returncode != 0:
        pytest.skip(f"npm ci failed ({done.returncode}): {_tail(done.stderr)}")
    return work


@pytest.fixture
def node_guard(node_guard_dir: Path, nats_url: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``node guard.mjs`` on the session server; yields the process and its log dir."""
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "VENOM_PREFIX": PREFIX,
        "FEATURE": "plant.temperature",
        "LIMIT": f"{LIMIT:g}",
    }
    logs = node_guard_dir.parent
    with (logs / "node.out").open("w") as out, (logs / "node.err").open("w") as err:
        proc = subprocess.Popen(
            ["node", "guard.mjs"], cwd=node_guard_dir, env=env, stdout=out, stderr=err, text=True
        )
    try:
        yield proc, logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


async def _wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    with anyio.move_on_after(timeout):
        while not cond():
            await anyio.sleep(0.02)
    assert cond(), f"timed out waiting for {what}"


async def _ready(proc: subprocess.Popen[str], logs: Path) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"node exited with {proc.returncode}: {(logs / 'node.err').read_text()}"
            )
        return "ready" in (logs / "node.out").read_text().split()

    with anyio.move_on_after(30):
        while not ready():
            await anyio.sleep(0.02)
    assert ready(), f"node-guard never printed ready: {(logs / 'node.err').read_text()}"


async def test_node_guard_answers_the_beat_and_vetoes(
    node_guard: tuple[subprocess.Popen[str], Path], nats_url: str
) -> None:
    proc, logs = node_guard
    await _ready(proc, logs)
    version = json.loads((EXAMPLE / "package.json").read_text())["version"]
    subjects = Subjects(PREFIX)
    codec = Codec()
    # A fixed period, and a deadline long enough that a busy machine makes the
    # beat wait for node rather than count it missing.
    config = make_config(prefix=PREFIX, period=0.02, deadline=1.0)
    records: list[BeatRecord] = []

    async def sink(record: BeatRecord) -> None:
        records.append(record)

    def temperature(r: BeatRecord) -> float | None:
        return r.pulse.features.get("plant.temperature")

    bus = await NatsBus.connect(nats_url, name="t-arbiter")
    client = await NatsBus.connect(nats_url, name="t-client")
    try:
        arbiter = Arbiter(bus, config, record_sink=sink)
        async with anyio.create_task_group() as tg:
            await tg.start(arbiter.run)
            # (a) discovered through $SRV.INFO before the first beat.
            live = arbiter.discovery.plugins.get(NAME)
            assert live is not None, sorted(arbiter.discovery.plugins)
            assert live.role == "guard"
            assert live.version == version
            assert len(live.instances) == 1
            # No telemetry yet, then below the limit, then above it.
            await _wait_until(lambda: len(records) >= 5, 20, "beats without the feature")
            for sent in (41.5, 95.25):
                telemetry = Telemetry(source="plant", values={"temperature": sent})
                await client.publish(subjects.telemetry("plant"), codec.encode(telemetry))
                await client.flush()

                def enough(v: float = sent) -> bool:
                    return sum(temperature(r) == v for r in records) >= 5

                await _wait_until(enough, 20, f"5 beats with plant.temperature={sent}")
            arbiter.stop()

        info = json.loads((await client.request(f"$SRV.INFO.venom-{NAME}", b"", timeout=5)).data)
        # (d) malformed pulses: an empty reply with the micro error headers.
        errors = []
        for bad in (b"this is not a pulse", b'{"beat": "one", "issued_at": 1.0}'):
            msg = await client.request(subjects.pulse, bad, timeout=5)
            errors.append((msg.data, dict(msg.headers or {})))
        # ... and node still answers a good one afterwards.
        pulse = Pulse(
            beat=7,
            issued_at=1.0,
            deadline=2.0,
            t_lambda=0.02,
            seed=1,
            features={"plant.temperature": 120.0},
        )
        good = await client.request(subjects.pulse, codec.encode(pulse), timeout=5)
        stats = json.loads((await client.request(f"$SRV.STATS.venom-{NAME}", b"", timeout=5)).data)
    finally:
        await client.close()
        await bus.close()

    # The micro service as `nats micro info` shows it.
    assert info["metadata"] == {
        "venom.plugin": NAME,
        "venom.role": "guard",
        "venom.prefix": PREFIX,
        "venom.schema": "1",
    }
    assert info["endpoints"] == [
        {"name": "pulse", "subject": subjects.pulse, "queue_group": subjects.queue_group(NAME)}
    ]

    # (b) every beat waited for node-guard and got its GuardVerdict.
    assert len(records) >= 15
    phases: dict[float | None, int] = {}
    for r in records:
        assert r.report.expected == [NAME], r.report
        assert NAME in r.report.replied, r.report
        assert r.report.missing == []
        assert (r.report.failed, r.report.rejected) == ({}, {})
        assert r.report.closed_by == "all"
        verdict = r.replies[NAME]
        assert isinstance(verdict, GuardVerdict), verdict
        assert verdict.guard == NAME
        value = temperature(r)
        phases[value] = phases.get(value, 0) + 1
        if value is None:
            assert (verdict.allow, verdict.severity) == (True, "info")
            assert verdict.reason == "feature missing"
            assert (r.decision.vetoes, r.decision.action) == ([], "STEADY")
        elif value <= LIMIT:
            assert (verdict.allow, verdict.severity) == (True, "info")
            assert verdict.metric == value
            assert (r.decision.vetoes, r.decision.action) == ([], "STEADY")
        else:
            # (c) above the limit: a critical veto, so the beat quarantines.
            assert (verdict.allow, verdict.severity) == (False, "critical")
            assert verdict.metric == value
            assert "95.25 > limit 80" in verdict.reason
            assert r.decision.vetoes == [NAME]
            assert r.decision.action == "QUARANTINE"
            assert r.decision.reason == f"critical veto by {NAME}"
    assert phases.keys() == {None, 41.5, 95.25}, phases
    assert all(n >= 5 for n in phases.values()), phases
    # The verdict's metric flows into the next pulse's context.
    vetoed = [i for i, r in enumerate(records[:-1]) if temperature(r) == 95.25]
    assert records[vetoed[0] + 1].pulse.context.estimates[f"{NAME}.metric"] == 95.25

    # (d) the malformed pulses.
    for data, headers in errors:
        assert data == b""
        assert headers[HDR_SERVICE_ERROR_CODE] == "400"
        assert headers[HDR_SERVICE_ERROR].startswith("malformed pulse: ")
        assert headers[HDR_PLUGIN] == NAME
    assert "beat" in errors[1][1][HDR_SERVICE_ERROR]
    reply = codec.decode_reply(good.data)
    assert isinstance(reply, GuardVerdict), reply
    assert (reply.allow, reply.metric) == (False, 120.0)
    assert (good.headers or {}).get(HDR_PLUGIN) == NAME
    (endpoint,) = stats["endpoints"]
    assert endpoint["num_requests"] >= len(records) + 3
    assert endpoint["data"]["rejected"] == 2
    assert endpoint["data"]["last_beat"] == 7

    # SIGTERM: drain and exit 0; the malformed pulse was logged.
    proc.send_signal(signal.SIGTERM)
    await _wait_until(lambda: proc.poll() is not None, 10, "node-guard to exit")
    err = (logs / "node.err").read_text()
    assert proc.returncode == 0, err
    assert "malformed pulse" in err
    assert "SIGTERM: draining" in err
