"""A plugin process that cannot start stops `venom run`, in one line (issue 11, point 6).

The supervisor restarts a worker that dies while the daemon runs; one that
fails the same way before it was ready three times in a row will not get
better by itself, so the daemon stops with the worker's own reason instead
of restarting it for ever. The plugin here opens a device that is not
there, which no check before the start can know.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from venom.plugins.sdk import NoConfig, Plugin
from venom.schemas import EstimateReply, PluginError, Pulse, Reply, Role

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SPEC = "tests.integration.test_supervisor:NoDevice"


class NoDevice(Plugin[NoConfig]):
    """Fails in open(), as a plugin whose hardware is missing would."""

    name: ClassVar[str] = "no-device"
    role: ClassVar[Role] = "estimator"
    version: ClassVar[str] = "1.0.0"

    async def open(self) -> None:
        raise PluginError("no-device: /dev/venom-probe0 is not there")

    async def handle(self, pulse: Pulse) -> Reply:
        return EstimateReply(estimator=self.name, values={})


def test_a_worker_that_fails_three_times_at_start_stops_the_daemon(tmp_path: Path) -> None:
    config = tmp_path / "venom.toml"
    config.write_text(f'[plugins]\nrun = ["kalman", "{SPEC}", "ledger"]\n')
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "venom.daemon", "run", "--config", str(config)]
    cmd += ["--state-dir", str(state), "--no-live"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert proc.returncode == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last == (
        f"venom: error: plugin process (kalman, {SPEC}, ledger) failed to start: "
        "no-device: /dev/venom-probe0 is not there (3 times in a row)"
    ), err[-3000:]
    assert "Traceback" not in err
    # Twice it was tried again, then given up: not a restart loop.
    retries = [line for line in err.splitlines() if "failed to start: no-device" in line]
    assert sum("retrying in" in line for line in retries) == 2, retries
    assert not (state / "nats.url").exists()
