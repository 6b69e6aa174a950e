"""Beat numbers that survive restarts, and a beat subject that junk cannot stop (SPEC 2.6).

`venom run` as users run it: a real process, its embedded nats-server and
its JetStream store in the state directory, the default plugins. The beat
records are read back from the ledger with `venom ledger export`.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import msgspec
import nats
import pytest

from tests.hacluster import LIGHT_PLUGINS
from tests.helpers import spawn, stop, venom, wait_beat, wait_for
from venom.daemon.beat.aggregate import context_after
from venom.daemon.beat.genome import Genome
from venom.daemon.config.settings import GenomeConfig
from venom.schemas import BeatRecord

pytestmark = pytest.mark.integration


def records(state: Path) -> list[BeatRecord]:
    """Every beat record in the ledger of ``state``, in ledger order."""
    out = venom("ledger", "export", "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    decode = msgspec.json.Decoder(BeatRecord).decode
    return [decode(json.dumps(json.loads(line)["record"])) for line in out.stdout.splitlines()]


def light_config(tmp: Path) -> str:
    """The default set without the torch model (it starts in a fraction of the time)."""
    config = tmp / "venom.toml"
    config.write_text(f"[plugins]\nrun = {json.dumps(LIGHT_PLUGINS)}\n")
    return str(config)


def run_beats(state: Path, beats: int) -> str:
    config = light_config(state.parent)
    args = ["--period", "0", "--beats", str(beats), "--no-live", "--config", config]
    res = venom("run", *args, "--state-dir", str(state))
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stderr


def test_a_restarted_daemon_goes_on_with_the_next_beat_genome_pid_and_context(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    run_beats(state, 200)
    err = run_beats(state, 200)
    assert "after beat 200" in err, err[-2000:]
    got = records(state)
    assert [r.beat for r in got] == list(range(1, 401))  # none twice, none skipped
    before, after = got[199], got[200]
    # The genome after beat 200, stepped as the first run would have: pulse 201's weights.
    genome = Genome(GenomeConfig())
    genome.restore(before.pulse.weights)
    genome.step(before.pid.output, before.decision.threat, before.beat, output_limit=0.05)
    assert after.pulse.weights == genome.weights
    # The PID goes on from beat 200's integral: the first beat after a start has
    # no dt back to back (as beat 1 has none), so the integral carries over as it is.
    assert before.pid.integral != 0.0
    assert after.pid.integral == before.pid.integral
    # The context of pulse 201 is what beat 200 left, estimates and all.
    context = context_after(before, required_guards=(), anomalies=[])
    assert after.pulse.context.estimates == context.estimates
    assert after.pulse.context.decision == before.decision.action
    assert venom("ledger", "verify", "--state-dir", str(state)).returncode == 0


def _stored(url: str, stream: str, seq: int) -> Any:
    async def get() -> Any:
        nc = await nats.connect(url)
        try:
            return await nc.jetstream().get_msg(stream, seq)
        finally:
            await nc.close()

    return anyio.run(get)


async def _intrude(url: str, stored: Any, refused: int, **login: str) -> list[str]:
    """Junk, a replay and a forged replay published on the beat subject; nats-py's errors
    (waiting for ``refused`` of them; for none, a second after the server had them all)."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, error_cb=on_error, **login)
    try:
        await nc.publish("venom.beat", b"hello")
        await nc.publish("venom.beat", stored.data)  # a replay, no record id
        forged = {"Nats-Msg-Id": "feedfacecafe.10"}  # a replay with a made-up id
        await nc.publish("venom.beat", stored.data, headers=forged)
        await nc.flush()
        with anyio.move_on_after(30 if refused else 1):
            while len(errors) < max(refused, 1):
                await anyio.sleep(0.05)
    finally:
        await nc.close()
    return errors


def _check_ledger(state: Path, after: int) -> None:
    beats = [r.beat for r in records(state)]
    assert beats == list(range(1, len(beats) + 1))  # each beat once, in order, none lost
    assert len(beats) >= after
    assert venom("ledger", "verify", "--state-dir", str(state)).returncode == 0


def test_the_embedded_server_refuses_strangers_and_plugins_on_the_beat_subject_and_restarts(
    tmp_path: Path,
) -> None:
    """The default: a client without credentials (the inspector) and one with the
    plugin's credentials are refused at the server; then kill -9 of the server."""
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    args = ["--period", "0.01", "--no-live", "--config", light_config(tmp_path)]
    daemon = spawn("run", *args, "--state-dir", str(state), log=log)
    try:
        wait_for((state / "nats.url").exists, what="the embedded server's URL file")
        url = (state / "nats.url").read_text().strip()
        beat = wait_beat(url, 50)  # `venom status` as the inspector: no set-up
        stored = _stored(url, "VENOM_BEATS", 10)  # the inspector may read a record
        credentials = state / "nats-credentials.json"
        assert credentials.stat().st_mode & 0o777 == 0o600
        plugin = json.loads(credentials.read_text())["plugin"]
        for login in ({}, {"user": "plugin", "password": plugin}):
            errors = anyio.run(lambda login=login: _intrude(url, stored, 3, **login))
            assert len(errors) == 3, errors
            assert all('permissions violation for publish to "venom.beat"' in e for e in errors)
        beat = wait_beat(url, beat + 200)
        server_pid = int((state / "nats-server.pid").read_text())
        killed = time.monotonic()
        os.kill(server_pid, signal.SIGKILL)
        wait_for(
            lambda: "embedded nats-server at" in log.read_text().split("exited with code")[-1],
            what="the server to be started again",
        )
        after = wait_beat(url, beat + 200)
        print(f"beats resumed within {time.monotonic() - killed:.1f} s of the kill")
        assert (state / "nats-server.pid").read_text().strip() != str(server_pid)
    finally:
        rc, err = stop(daemon, log)
    assert rc == 0, err[-3000:]
    _check_ledger(state, after)
    assert "exited with code" in err
    assert "not an arbiter's record" not in err  # nothing foreign reached the stream
    assert "permissions violation" not in err  # venom's own processes were allowed all
    server_log = (state / "nats-server.log").read_text()
    violations = [line for line in server_log.splitlines() if "Violation" in line]
    assert len(violations) == 6, violations
    assert all("user:inspector" in v or "user:plugin" in v for v in violations)


def test_junk_and_replays_on_an_open_server_neither_stop_the_beat_nor_enter_the_ledger(
    tmp_path: Path,
) -> None:
    """``embedded.credentials = false`` (anyone may publish): the arbiter and the
    ledger still keep junk and replays out of the log."""
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    args = ["--period", "0.01", "--no-live", "--config", light_config(tmp_path)]
    env = {**os.environ, "VENOM_EMBEDDED_CREDENTIALS": "false"}
    daemon = spawn("run", *args, "--state-dir", str(state), log=log, env=env)
    try:
        wait_for((state / "nats.url").exists, what="the embedded server's URL file")
        url = (state / "nats.url").read_text().strip()
        beat = wait_beat(url, 50)
        stored = _stored(url, "VENOM_BEATS", 10)
        assert anyio.run(lambda: _intrude(url, stored, 0)) == []  # nothing refused it
        after = wait_beat(url, beat + 200)
    finally:
        rc, err = stop(daemon, log)
    assert rc == 0, err[-3000:]
    assert not (state / "nats-credentials.json").exists()
    _check_ledger(state, after)
    assert "not an arbiter's record" in err, err[-3000:]
    assert "record does not continue the log" in err or "not a beat record" in err
