"""Bad input never stops the beat (issue 2, item 6), over a real nats-server;
bad input to a command stops it with one line, before anything starts (issue 11).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest

from tests.helpers import Echo, make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.natsbus import NatsBus
from venom.plugins.host import PluginHost
from venom.schemas import (
    HDR_PLUGIN,
    HDR_SERVICE_ERROR,
    HDR_SERVICE_ERROR_CODE,
    BeatRecord,
    Subjects,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

BAD_REPLIES = [
    b"this is not json",
    b'{"type": "no-such-reply", "score": 1}',
    b'{"type": "core", "score": 0.5}',  # missing field "core"
    b'{"type": "core", "core": "E", "score": NaN}',
    b'{"type": "core", "core": "E", "score": 0.5, "notes": ["' + b"x" * 1_000_000 + b'"]}',
]


async def test_bad_replies_are_rejected_counted_and_logged_once(
    nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="venom")
    subjects = Subjects("badin")
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    rogue = await nats.connect(nats_url, name="rogue")
    sent: list[int] = []

    async def answer(msg: Any) -> None:
        i = len(sent)
        sent.append(i)
        await rogue.publish(
            msg.reply, BAD_REPLIES[i % len(BAD_REPLIES)], headers={HDR_PLUGIN: "rogue"}
        )

    await rogue.subscribe(subjects.pulse, queue=subjects.queue_group("rogue"), cb=answer)
    await rogue.flush()
    bus = await NatsBus.connect(nats_url, name="t-arbiter")
    pbus = await NatsBus.connect(nats_url, name="t-plugins")
    try:
        async with PluginHost([Echo()], pbus, subjects=subjects):
            await pbus.flush()
            arbiter = Arbiter(
                bus, make_config(prefix="badin", period=0.01, deadline=0.2), record_sink=sink
            )
            with anyio.fail_after(30):
                await arbiter.run(beats=20)
    finally:
        await bus.close()
        await pbus.close()
        await rogue.close()

    assert [r.beat for r in records] == list(range(1, 21))
    health = arbiter.gather.health["rogue"]
    # The rogue is not a micro service: the arbiter learns of it from its first
    # reply, which may arrive after beat 1 closed; learned at the end of the beat
    # it is heard in, it is waited for from beat 3 at the latest.
    assert health.rejected + health.late == 20
    assert health.rejected >= 18
    assert health.replies == 0
    rejected = {r.beat: r.report.rejected.get("rogue", "") for r in records}
    assert all(rejected[b] for b in range(3, 21)), rejected
    for beat, text in rejected.items():
        if text:
            needle = ["malformed", "no-such-reply", "core", "malformed", "exceeds the limit"]
            assert needle[(beat - 1) % 5] in text, (beat, text)
    # Every beat still got its decision and echo's reply.
    assert all("echo" in r.report.replied for r in records)
    logged = [rec for rec in caplog.records if "rejected reply from rogue" in rec.getMessage()]
    assert len(logged) == 1
    assert "_INBOX." in logged[0].getMessage()


async def test_junk_on_pulse_telemetry_and_ctl(nats_url: str) -> None:
    subjects = Subjects("junk")
    records: list[BeatRecord] = []

    async def sink(r: BeatRecord) -> None:
        records.append(r)

    nc = await nats.connect(nats_url, name="junk-sender")
    bus = await NatsBus.connect(nats_url, name="t-arbiter")
    pbus = await NatsBus.connect(nats_url, name="t-plugins")
    echo = Echo()
    try:
        async with PluginHost([echo], pbus, subjects=subjects) as host:
            await pbus.flush()
            arbiter = Arbiter(
                bus, make_config(prefix="junk", period=0.01, deadline=0.2), record_sink=sink
            )
            async with anyio.create_task_group() as tg:
                await tg.start(arbiter.run)
                # Junk pulse with a reply subject: the plugin answers with a micro error.
                reply = await nc.request(subjects.pulse, b"{not a pulse", timeout=2)
                assert reply.headers is not None
                assert reply.headers[HDR_SERVICE_ERROR_CODE] == "400"
                assert "malformed pulse" in reply.headers[HDR_SERVICE_ERROR]
                # Junk pulse without a reply subject: dropped, counted.
                await nc.publish(subjects.pulse, b'{"beat": "one"}')
                # Junk telemetry: counted, dropped.
                await nc.publish(subjects.telemetry("plant"), b"\xff\xfe garbage")
                await nc.publish(
                    subjects.telemetry("plant"), b'{"source": "plant", "values": {"t": "hot"}}'
                )
                # Junk control requests: error replies with micro headers.
                bad = await nc.request(subjects.ctl_weights, b'{"R": "lots"}', timeout=2)
                assert bad.headers is not None
                assert bad.headers[HDR_SERVICE_ERROR_CODE] == "400"
                assert "R" in bad.headers[HDR_SERVICE_ERROR]
                neg = await nc.request(subjects.ctl_weights, b'{"R": -1}', timeout=2)
                assert neg.headers is not None
                assert neg.headers[HDR_SERVICE_ERROR_CODE] == "400"
                unknown = await nc.request("junk.ctl.explode", b"", timeout=2)
                assert unknown.headers is not None
                assert unknown.headers[HDR_SERVICE_ERROR_CODE] == "404"
                assert msgspec.json.decode(unknown.data)["code"] == 404
                # And the good ones still work.
                ok = await nc.request(subjects.ctl_status, b"", timeout=2)
                assert ok.headers is None or HDR_SERVICE_ERROR not in ok.headers
                before = arbiter.beat
                with anyio.fail_after(10):
                    while arbiter.beat < before + 20:
                        await anyio.sleep(0.01)
                arbiter.stop()
            runner = host.runners[0]
            assert runner.rejected == 2
            assert arbiter.inputs.problems.total("malformed telemetry") == 2
    finally:
        await nc.close()
        await bus.close()
        await pbus.close()
    assert [r.beat for r in records] == list(range(1, len(records) + 1))
    assert all(r.report.replied.keys() == {"echo"} for r in records[-10:])


VENOM = [sys.executable, "-m", "venom.daemon"]
#: What a started daemon leaves in its state directory (the server, its store).
STARTED = {"nats.url", "nats-server.pid", "jetstream"}


def venom(*args: str, stdin: bytes | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run a venom command to its end: (exit code, stdout, stderr); its group killed on timeout."""
    proc = subprocess.Popen(
        [*VENOM, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(f"venom {' '.join(args)} still running after {timeout} s") from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def assert_one_line(code: int, err: str, *needles: str, exit_code: int = 1) -> str:
    assert "Traceback" not in err, err
    assert code == exit_code, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert all(n in lines[0] for n in needles), (needles, lines[0])
    return lines[0]


def assert_nothing_started(state: Path) -> None:
    found = sorted(str(p) for p in state.rglob("*") if p.name in STARTED)
    assert not found, found


BAD_SCENARIOS = {
    "invalid-toml": ('name = "x"\n[[disturbance\n', "invalid TOML"),
    "bad-kind": (
        'name = "x"\n[[disturbance]]\nkind = "meteor"\nstart = 1\nduration = 1\n',
        "disturbance[0].kind",
    ),
    "unknown-key": (
        'name = "x"\n[[disturbance]]\nkind = "jitter_burst"\nstrat = 1\nduration = 1\n',
        "unknown field `strat`",
    ),
    "not-text": ("\udcff\udcfe", "not UTF-8"),
}


def test_run_refuses_a_missing_scenario_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code, _, err = venom(
        "run", "--scenario", str(tmp_path / "nope.toml"), "--state-dir", str(state)
    )
    assert_one_line(code, err, "venom: error: plugin 'optical-plant': run.scenario:", "nope.toml")
    assert_nothing_started(state)


@pytest.mark.parametrize("case", sorted(BAD_SCENARIOS))
def test_run_refuses_a_bad_scenario_file(tmp_path: Path, case: str) -> None:
    text, needle = BAD_SCENARIOS[case]
    scenario = tmp_path / f"{case}.toml"
    scenario.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    state = tmp_path / "state"
    code, _, err = venom("run", "--scenario", str(scenario), "--state-dir", str(state))
    assert_one_line(code, err, "plugin 'optical-plant': run.scenario:", scenario.name, needle)
    assert_nothing_started(state)


BAD_SETTINGS = {
    "wrong-type": (
        '[plugins.settings.optical-plant]\ngain = "high"\n',
        "plugin 'optical-plant': plugins.settings.optical-plant.gain: Expected `float`",
    ),
    "out-of-order": (
        "[plugins.settings.thermal]\nlow = 90.0\n",
        "plugin 'thermal': plugins.settings.thermal.medium: the thresholds must satisfy",
    ),
    "plant-scenario": (
        '[plugins.settings.optical-plant]\nscenario = "gone.toml"\n',
        "plugins.settings.optical-plant.scenario: no scenario 'gone.toml'",
    ),
    "inf": ("[beat]\nperiod = inf\n", "beat.period: must be a finite number"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_run_refuses_a_bad_setting(tmp_path: Path, case: str) -> None:
    toml, needle = BAD_SETTINGS[case]
    cfg = tmp_path / "venom.toml"
    cfg.write_text(toml)
    state = tmp_path / "state"
    code, _, err = venom("run", "--config", str(cfg), "--state-dir", str(state))
    assert_one_line(code, err, "venom: error: ", needle)
    assert_nothing_started(state)


@pytest.mark.parametrize("what", ["daemon", "plugins"])
def test_bench_checks_the_config_it_measures(tmp_path: Path, what: str) -> None:
    cfg = tmp_path / "venom.toml"
    cfg.write_text(f'[run]\nscenario = "{tmp_path / "gone.toml"}"\n')
    code, _, err = venom("bench", what, "--beats", "10", "--config", str(cfg))
    assert_one_line(code, err, "plugin 'optical-plant': run.scenario: no scenario", "gone.toml")


def test_plugin_run_checks_its_plugins_before_it_connects(tmp_path: Path) -> None:
    cfg = tmp_path / "venom.toml"
    cfg.write_text("[plugins.settings.ber]\ntier = 'platinum'\n")
    code, _, err = venom(
        "plugin", "run", "ber", "--config", str(cfg), "--nats", "nats://127.0.0.1:1"
    )
    assert_one_line(code, err, "plugin 'ber': plugins.settings.ber.tier: 'platinum'")


PROOF = {
    "type": "inclusion",
    "index": 0,
    "size": 1,
    "leaf_hash": "ab" * 32,
    "root": "ab" * 32,
    "proof": [],
}

BAD_PROOFS = {
    "list": (b"[1, 2]", "Expected `object`, got `array`"),
    "string": (b'"proof"', "Expected `object`, got `str`"),
    "number": (b"42", "Expected `object`, got `int`"),
    "invalid-json": (b"{nope", "JSON is malformed"),
    "not-text": (b"\xff\xfe", "JSON is malformed"),
    "no-type": (b"{}", "missing required field `type`"),
    "unknown-type": (b'{"type": "weird"}', "Invalid value 'weird' - at `$.type`"),
    "missing-keys": (b'{"type": "inclusion", "index": 0}', "missing required field `size`"),
    "wrong-type": (
        msgspec.json.encode({**PROOF, "index": "0"}),
        "Expected `int`, got `str` - at `$.index`",
    ),
    "negative": (
        msgspec.json.encode({**PROOF, "type": "consistency", "old_size": -1}),
        "Expected `int` >= 0 - at `$.old_size`",
    ),
    "not-hex": (msgspec.json.encode({**PROOF, "root": "zz" * 32}), "root is not hex"),
    "short-hash": (
        msgspec.json.encode({**PROOF, "proof": ["ab"]}),
        "proof[0] must be 64 hex digits",
    ),
    "other-hash": (msgspec.json.encode({**PROOF, "hash": "md5"}), "unsupported hash 'md5'"),
}


def test_check_proof_reads_a_valid_proof(tmp_path: Path) -> None:
    # One leaf: the root is the leaf's hash.
    result = venom("ledger", "check-proof", "-", stdin=msgspec.json.encode(PROOF))
    assert result == (0, "valid inclusion proof\n", "")


@pytest.mark.parametrize("case", sorted(BAD_PROOFS))
def test_check_proof_refuses_what_is_not_a_proof(tmp_path: Path, case: str) -> None:
    data, needle = BAD_PROOFS[case]
    path = tmp_path / f"{case}.json"
    path.write_bytes(data)
    code, _, err = venom("ledger", "check-proof", str(path))
    assert_one_line(code, err, f"venom: error: {path}:", needle)
    code, _, err = venom("ledger", "check-proof", "-", stdin=data)
    assert_one_line(code, err, "venom: error: -:", needle)


def test_check_proof_of_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    code, _, err = venom("ledger", "check-proof", str(tmp_path / "gone.json"))
    assert_one_line(code, err, "gone.json: cannot read: No such file or directory")
    code, _, err = venom("ledger", "check-proof", str(tmp_path))
    assert_one_line(code, err, "cannot read: Is a directory")


def test_a_damaged_checkpoint_is_one_line(tmp_path: Path) -> None:
    ledger = tmp_path / "plugins" / "ledger"
    ledger.mkdir(parents=True)
    (ledger / "entries.log").write_bytes(b"")
    for damage, needle in ((b"[1]", "a JSON list, not an object"), (b"{x", "unreadable")):
        (ledger / "checkpoint").write_bytes(damage)
        code, _, err = venom("ledger", "head", "--state-dir", str(tmp_path))
        assert_one_line(code, err, "checkpoint: unreadable checkpoint", needle)


BAD_FLAGS = [
    (["status", "--timeout", "nan"], "argument --timeout: must be a finite number > 0"),
    (["plugins", "--timeout", "inf"], "argument --timeout: must be a finite number > 0"),
    (["tail", "--count", "-1"], "argument --count: must be >= 0"),
    (["bench", "--duration", "-1"], "argument --duration: must be a finite number > 0"),
    (["bench", "--rounds", "0"], "argument --rounds: must be >= 1"),
    (["bench", "ledger", "--group-ms", "nan"], "argument --group-ms: must be a finite"),
    (["--log-level", "loud", "status"], "argument --log-level: 'loud' is not one of"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_FLAGS)
def test_bad_flags_are_refused_before_the_command_runs(args: list[str], needle: str) -> None:
    code, _, err = venom(*args, "--nats", "nats://127.0.0.1:1")
    assert "Traceback" not in err, err
    assert code == 2, err
    assert needle in err.strip().splitlines()[-1]


def test_a_plugin_module_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_at_import.py").write_text("raise RuntimeError('boom')\n")
    proc = subprocess.run(
        [*VENOM, "plugin", "run", "broken_at_import:Guard", "--nats", "nats://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert_one_line(
        proc.returncode, proc.stderr, "importing broken_at_import failed: RuntimeError: boom"
    )


async def test_status_and_plugins_survive_junk_answers(nats_url: str, tmp_path: Path) -> None:
    """A rogue answering the client commands' requests gets one line, not a traceback."""
    prefix = "junkcli"
    meta = {"venom.plugin": "rogue", "venom.role": "guard", "venom.prefix": prefix}
    info = {"name": "venom-rogue", "id": "R1", "version": "1.0.0", "metadata": meta}
    stats = {"id": "R1", "endpoints": [{"num_requests": "lots", "data": [1]}, 5, {"data": {}}]}
    answers = {
        f"{prefix}.ctl.status": b"not json",
        "$SRV.INFO": msgspec.json.encode(info),
        "$SRV.STATS": msgspec.json.encode(stats),
    }
    rogue = await nats.connect(nats_url, name="rogue")

    async def answer(msg: Any) -> None:
        await rogue.publish(msg.reply, answers[msg.subject])

    for subject in answers:
        await rogue.subscribe(subject, cb=answer)
    await rogue.flush()
    cfg = tmp_path / "venom.toml"
    cfg.write_text(f'[nats]\nprefix = "{prefix}"\n')
    common = ("--config", str(cfg), "--nats", nats_url)
    try:
        code, _, err = await anyio.to_thread.run_sync(lambda: venom("status", *common))
        assert_one_line(code, err, f"the answer on {prefix}.ctl.status is not JSON")
        answers[f"{prefix}.ctl.status"] = b"[1, 2]"
        code, _, err = await anyio.to_thread.run_sync(lambda: venom("status", *common))
        assert_one_line(code, err, "is not a JSON object")
        code, out, err = await anyio.to_thread.run_sync(
            lambda: venom("plugins", "--json", "--timeout", "1", *common)
        )
        assert (code, err) == (0, ""), err
        (row,) = json.loads(out)
        assert (row["name"], row["role"], row["pulses"], row["errors"]) == ("rogue", "guard", 0, 0)
    finally:
        await rogue.close()
