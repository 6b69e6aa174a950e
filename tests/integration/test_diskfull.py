"""A full disk under the JetStream store: nothing decided is lost (SPEC 2.6).

`venom run` as users run it, its embedded nats-server storing JetStream on
a small tmpfs mounted over ``<state>/jetstream``; the test fills it with a
file and removes the file again:

(a) while the daemon runs: the log names the full disk (path, free space),
    `venom status` says why beats are held, and once there is room the
    daemon restarts its server and the stream takes every record waiting;
(b) the disk full again, then SIGTERM: the records the stream did not take
    stay in the spill file; the next `venom run` (room again) sends them
    first and goes on after them.

Every decided beat ends up in the ledger once, in order. Mounting needs
root (CI runs as root); elsewhere the test skips, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import spawn, stop, venom, wait_beat, wait_for
from tests.integration.test_continuation import light_config, records

pytestmark = pytest.mark.integration

SIZE_MIB = 32


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    """A ``SIZE_MIB`` tmpfs mounted on ``where`` until the block ends."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    where.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m,mode=0700", "tmpfs", str(where)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write a file on ``disk`` until no space is left; the file."""
    filler = disk / "filler"
    chunk = b"\0" * (64 * 1024)
    with filler.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    return filler


def status(url: str) -> dict[str, object]:
    out = venom("status", "--nats", url, timeout=30)
    return dict(json.loads(out.stdout)) if out.returncode == 0 else {}


def stopped_after(err: str) -> int:
    """The beat the daemon's log says it stopped after."""
    lines = [json.loads(x) for x in err.splitlines() if '"stopped after' in x]
    assert lines, err[-3000:]
    return int(str(lines[-1]["msg"]).split()[2])


@pytest.mark.timeout(600)
def test_a_full_store_disk_is_named_and_every_decided_beat_reaches_the_ledger(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    args = ["--period", "0.01", "--no-live", "--config", light_config(tmp_path)]
    env = {**os.environ, "VENOM_RUN_SPILL_MIB": "32"}  # the default, not the suite's
    with small_disk(state / "jetstream") as disk:
        # (a) full, then room again, while the daemon runs
        log = tmp_path / "a.log"
        daemon = spawn("run", *args, "--state-dir", str(state), log=log, env=env)
        try:
            wait_for((state / "nats.url").exists, what="the embedded server's URL file")
            url = (state / "nats.url").read_text().strip()
            wait_beat(url, 50)
            filler = fill(disk)
            wait_for(lambda: "is full" in log.read_text(), what="the full disk in the log")
            wait_for(
                lambda: "is full" in str(status(url).get("storage", "")),
                what="the full disk in `venom status`",
            )
            held = int(str(status(url)["beat"]))
            filler.unlink()
            wait_for(lambda: "free on" in log.read_text(), what="room again")
            wait_beat(url, held + 100)
        finally:
            rc, err = stop(daemon, log)
        assert rc == 0, err[-3000:]
        line = next(x for x in err.splitlines() if "is full" in x)
        assert str(disk) in line
        assert "MiB free of" in line
        decided = stopped_after(err)
        beats = [r.beat for r in records(state)]
        assert beats == list(range(1, decided + 1))

        # (b) full again, SIGTERM: the records wait in the spill for the next start
        log = tmp_path / "b.log"
        daemon = spawn("run", *args, "--state-dir", str(state), log=log, env=env)
        try:
            wait_for((state / "nats.url").exists, what="the embedded server's URL file")
            url = (state / "nats.url").read_text().strip()
            wait_beat(url, decided + 50)
            filler = fill(disk)
            wait_for(lambda: "is full" in log.read_text(), what="the full disk in the log")
        finally:
            rc, err = stop(daemon, log)
        assert rc == 0, err[-3000:]
        assert "sent at the next start" in err, err[-3000:]
        assert "Traceback" not in err
        spilled_to = stopped_after(err)
        filler.unlink()
        res = venom("run", *args, "--beats", "100", "--state-dir", str(state), env=env)
        assert res.returncode == 0, res.stderr[-3000:]
        assert "were decided but not stored; sending them" in res.stderr
        beats = [r.beat for r in records(state)]
        assert beats == list(range(1, spilled_to + 101))
        assert venom("ledger", "verify", "--state-dir", str(state)).returncode == 0
