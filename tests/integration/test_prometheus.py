"""The Prometheus endpoint of a running daemon (issue 5, point 2; SPEC 7).

`venom run` as a real process (embedded nats-server, plugins in a worker
process, the ledger in its own), scraped over real HTTP while it beats,
then stopped with SIGTERM.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.helpers import stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACTIONS = {"QUARANTINE", "ALERT", "BALANCE", "REPAIR", "OPTIMIZE", "STEADY"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(url: str) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def _total(samples: dict[str, list[Sample]], name: str) -> float:
    return sum(s.value for s in samples.get(name, []))


def test_metrics_endpoint_during_a_run(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "venom.toml"
    config.write_text(
        "[beat]\nperiod = 0.01\n"
        '[plugins]\nrun = ["optical-plant", "kalman", "thermal", "gate", "regen-core", '
        '"balance-core", "entropy-core", "optimize-core", "ledger"]\n'
        f'[telemetry]\nprometheus = true\nprometheus_port = {port}\nprometheus_host = "127.0.0.1"\n'
    )
    url = f"http://127.0.0.1:{port}/metrics"
    log = tmp_path / "daemon.log"
    # stderr to a file: a pipe nobody reads while the test scrapes fills up and
    # stops the daemon at its next log line.
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "venom.daemon",
                "run",
                "--config",
                str(config),
                "--state-dir",
                str(tmp_path / "state"),
                "--scenario",
                "default",
                "--no-live",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            text=True,
        )
    try:
        samples: dict[str, list[Sample]] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                samples = _scrape(url)
            except (urllib.error.URLError, ConnectionError):
                samples = {}
            if _total(samples, "venom_decisions_total") >= 400 and _total(
                samples, "venom_ledger_size"
            ):
                break
            time.sleep(0.25)
        else:
            pytest.fail(f"no 400 decisions on {url} within 120 s: {sorted(samples)}")
    finally:
        code, _ = stop_process(proc, timeout=120)
    err = log.read_text()
    assert code == 0, err[-3000:]

    # The beat-duration histogram: cumulative buckets, count = decisions so far.
    buckets = list(samples["venom_beat_duration_seconds_bucket"])
    bounds = [float(s.labels["le"]) for s in buckets]
    counts = [s.value for s in buckets]
    assert bounds == sorted(bounds)
    assert bounds[-1] == float("inf")
    assert counts == sorted(counts)
    count = _total(samples, "venom_beat_duration_seconds_count")
    total_s = _total(samples, "venom_beat_duration_seconds_sum")
    assert counts[-1] == count
    decisions = _total(samples, "venom_decisions_total")
    assert abs(count - decisions) <= 1  # both counted at the end of each beat
    # Plausible beat times, in seconds (not ms): well under a second on average
    # and each (how much under depends on the machine), none over 1 s.
    assert 0 < total_s / count < 0.1
    assert counts[bounds.index(1.0)] == count

    # Per-decision counters: known actions only, STEADY among them in a calm start.
    by_action = {s.labels["venom_decision"]: s.value for s in samples["venom_decisions_total"]}
    assert set(by_action) <= ACTIONS
    assert by_action.get("STEADY", 0) > 0
    # The other SPEC 7 metrics are there with sane values.
    assert _total(samples, "venom_missed_ticks_total") >= 0
    assert 0 < _total(samples, "venom_ledger_size") <= decisions
    assert _total(samples, "venom_ledger_lag") >= 0
    assert _total(samples, "venom_period_seconds") == pytest.approx(0.01)
    assert _total(samples, "venom_plugins_live") == 9
    assert "venom_pid_error_seconds" in samples
