"""proccpu: the process tree from the children files is the one the full /proc scan finds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from venom.daemon.bench import proccpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_the_tree_walk_finds_what_the_scan_finds() -> None:
    # Two children, each with a child of its own.
    procs = [
        subprocess.Popen(["/bin/sh", "-c", "sleep 5 & wait"], start_new_session=True)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 5
        while len(proccpu._scan(os.getpid())) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        scanned = proccpu._scan(os.getpid())
        sampled = proccpu.sample()
        assert len(scanned) >= 5
        assert sampled.keys() == scanned.keys()
        assert all(v >= 0.0 for v in sampled.values())
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)  # the shell and its sleep
            p.wait()


def test_a_gone_root_samples_nothing() -> None:
    p = subprocess.Popen(["/bin/true"])
    p.wait()
    assert proccpu.sample(p.pid) == {}
