"""A loop overloaded on purpose: the operator is told why, once, and never flooded (issue 12).

The default set at a 1 ms period cannot be kept on any machine this suite
runs on: most ticks are missed and the plugins flap between down and back.
The daemon must say so in one warning naming the slowest plugins, show the
same in ``venom status`` and the metrics, summarise the breaker in at most
one line per 10 s, and stop cleanly.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import stop_process
from venom.daemon.config.settings import DEFAULT_PLUGINS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Seconds of overload the log lines are counted over, once the first warning is out
#: and every plugin has joined: past the next 10 s load window, where a warning said
#: more than once would repeat.
WATCH = 12.0
#: The issue's bound: 30 lines a minute.
PER_MINUTE = 30


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines(log: Path) -> list[dict[str, str]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line being written
    return out


def _gauges(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(("venom_beat_kept", "venom_ticks_missed", "venom_replies_missing"))
    }


def _status(state: Path) -> dict[str, object]:
    run = subprocess.run(
        [sys.executable, "-m", "venom.daemon", "status", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def test_an_overloaded_loop_says_why_once_and_does_not_flood(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "venom.toml"
    config.write_text(
        "[beat]\nperiod = 0.001\n"
        f'[telemetry]\nprometheus = true\nprometheus_port = {port}\nprometheus_host = "127.0.0.1"\n'
    )
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    with log.open("w") as err_file:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "venom.daemon", "run", "--config", str(config)),
                *("--state-dir", str(state), "--no-live"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            text=True,
        )
    try:
        deadline = time.monotonic() + 120
        first = -1
        while first < 0:
            assert time.monotonic() < deadline, "no 'beat is not kept' warning within 120 s"
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
            lines = _lines(log)
            first = next(
                (i for i, r in enumerate(lines) if r["msg"].startswith("the beat is not kept")), -1
            )
        warning = lines[first]
        assert warning["level"] == "warning"
        assert "% of ticks missed" in warning["msg"]
        assert "slowest: " in warning["msg"]
        # The same in venom status and in the metrics: the report of the last
        # window, which names the slowest plugins when replies went missing in it
        # (the loop itself may be what misses ticks: then it names none).
        load: dict[str, object] = {}

        def overloaded() -> bool:
            found = _status(state)["load"]
            assert isinstance(found, dict)
            load.clear()
            load.update(found)
            return load["fits"] is False

        deadline = time.monotonic() + 60
        while not overloaded():
            assert time.monotonic() < deadline, f"no overloaded load report: {load}"
            time.sleep(0.5)
        slowest = load["slowest"]
        assert isinstance(slowest, list)
        if float(str(load["missing_pct"])) > 0:
            assert slowest, load
        assert load["reason"]
        assert float(str(load["missed_ticks_pct"])) > 1.0
        gauges = _gauges(f"http://127.0.0.1:{port}/metrics")
        assert gauges["venom_beat_kept"] == 0
        assert gauges["venom_ticks_missed_percent"] > 1.0
        # Then count what it writes while it stays overloaded, once every plugin
        # has joined (on a slow start they join after the warning: a line each).
        deadline = time.monotonic() + 120
        while len(list(_status(state)["plugins"])) < len(DEFAULT_PLUGINS):
            assert time.monotonic() < deadline, "not every plugin joined within 120 s"
            time.sleep(0.5)
        start = len(_lines(log))
        time.sleep(WATCH)
        assert proc.poll() is None, log.read_text()[-3000:]
        later = _lines(log)[start:]
        since_first = _lines(log)[first:]
    finally:
        code, _ = stop_process(proc, timeout=120)
    assert code == 0, log.read_text()[-3000:]
    assert len(later) <= PER_MINUTE * WATCH / 60, [r["msg"][:120] for r in later]
    # Said once (it repeats at most every 5 minutes), breaker changes in summaries.
    assert sum(r["msg"].startswith("the beat is not kept") for r in since_first) == 1
    assert not any("marked down" in r["msg"] or "waited for again" in r["msg"] for r in since_first)
    assert any(r["msg"].startswith("breaker: ") for r in _lines(log))
