"""The venom command as a user runs it: real processes, real nats-server."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from tests.helpers import WAIT, spawn, stop, venom, wait_for

pytestmark = pytest.mark.integration


def test_help_for_every_command() -> None:
    for args in (
        ["--help"],
        ["run", "--help"],
        ["status", "--help"],
        ["tail", "--help"],
        ["plugins", "--help"],
        ["plugin", "run", "--help"],
        ["bench", "--help"],
        ["schema", "export", "--help"],
    ):
        res = venom(*args)
        assert res.returncode == 0, (args, res.stderr)
        assert "usage:" in res.stdout


def test_run_embedded_beats_and_exits(tmp_path: Path) -> None:
    res = venom("run", "--beats", "300", "--no-live", "--state-dir", str(tmp_path / "state"))
    assert res.returncode == 0, res.stderr
    assert "embedded nats-server at nats://127.0.0.1:" in res.stderr
    assert "stopped after 300 beats" in res.stderr
    assert not (tmp_path / "state" / "nats.url").exists()
    assert (tmp_path / "state" / "jetstream").is_dir()
    # The default set includes the ledger: every beat is in it, and it verifies.
    verify = venom("ledger", "verify", "--state-dir", str(tmp_path / "state"))
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("ok: 300 entries")


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "venom.toml"
    cfg.write_text("[beat]\nperiod = 'fast'\n")
    res = venom("run", "--config", str(cfg), "--beats", "1", "--state-dir", str(tmp_path))
    assert res.returncode != 0
    assert "beat.period" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_status_tail_plugins_and_an_out_of_process_plugin(nats_url: str, tmp_path: Path) -> None:
    cfg = tmp_path / "venom.toml"
    cfg.write_text(
        '[nats]\nprefix = "clitest"\n'
        '[plugins]\nrun = ["regen-core", "balance-core", "entropy-core"]\n'
        "[beat]\ndiscovery_interval = 0.2\n"
    )
    common = ["--config", str(cfg), "--nats", nats_url]
    plugin_log, daemon_log = tmp_path / "plugin.log", tmp_path / "daemon.log"
    plugin = spawn(
        "plugin",
        "run",
        "optimize-core",
        *common,
        "--state-dir",
        str(tmp_path / "p"),
        log=plugin_log,
    )
    daemon = spawn("run", *common, "--no-live", "--state-dir", str(tmp_path / "d"), log=daemon_log)
    try:

        def counted() -> bool:
            res = venom("status", *common)
            if res.returncode != 0:
                return False
            st = json.loads(res.stdout)
            names = {p["name"]: p for p in st["plugins"]}
            opt = names.get("optimize-core")
            return bool(st["k"] == 4 and opt and opt["last_latency_ms"] is not None)

        wait_for(counted, what="optimize-core counted in k")
        st = json.loads(venom("status", *common).stdout)
        assert st["beat"] > 0
        assert st["p"] == 5
        assert st["t_lambda"] == pytest.approx(0.0042105, rel=1e-3)
        assert set(st["weights"]) >= {"R", "B", "E", "O"}
        assert {"pid_error", "pid_stable", "missed_ticks", "last_decision", "rate"} <= set(st)
        assert st["last_decision"]["action"] in {
            "STEADY",
            "BALANCE",
            "REPAIR",
            "OPTIMIZE",
            "ALERT",
            "QUARANTINE",
        }
        tail = venom("tail", *common, "--count", "3", timeout=WAIT)
        assert tail.returncode == 0, tail.stderr
        lines = tail.stdout.strip().splitlines()
        assert len(lines) == 3
        assert all(" beat " in line for line in lines)
        plugins = venom("plugins", *common, "--json")
        assert plugins.returncode == 0, plugins.stderr
        rows = {r["name"]: r for r in json.loads(plugins.stdout)}
        assert set(rows) == {"regen-core", "balance-core", "entropy-core", "optimize-core"}
        opt = rows["optimize-core"]
        assert opt["role"] == "core"
        assert opt["instances"] == 1
        assert opt["version"]
        assert opt["pulses"] > 0
        assert opt["errors"] == 0
        assert 0 < opt["last_us"] < 1e6
        assert 0 < opt["p50_us"] <= opt["p99_us"]
        table = venom("plugins", *common)
        assert table.stdout.splitlines()[0].split()[:4] == ["NAME", "ROLE", "VERSION", "INSTANCES"]
    finally:
        rc_daemon, err_daemon = stop(daemon, daemon_log)
        rc_plugin, err_plugin = stop(plugin, plugin_log)
    assert rc_daemon == 0, err_daemon
    assert rc_plugin == 0, err_plugin
    assert "stopped after" in err_daemon


def test_status_without_a_daemon_fails_with_one_line(nats_url: str) -> None:
    res = venom("status", "--nats", nats_url, "--timeout", "0.3")
    assert res.returncode == 1
    assert res.stderr.startswith("venom: error: no arbiter answered")


def test_sigterm_stops_the_daemon_and_its_embedded_server(tmp_path: Path) -> None:
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    daemon = spawn("run", "--no-live", "--state-dir", str(state), log=log)
    url_file = state / "nats.url"
    try:
        wait_for(url_file.exists, what="the embedded server's URL file")
        url = url_file.read_text().strip()
        wait_for(lambda: venom("status", "--nats", url).returncode == 0, what="status")
    finally:
        rc, err = stop(daemon, log)
    assert rc == 0, err
    assert "stopped after" in err
    assert not url_file.exists()
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=1).close()


def beat_of(url: str) -> int:
    """The arbiter's beat number from ``venom status`` (0 while it does not answer)."""
    out = venom("status", "--nats", url, "--json", timeout=30)
    if out.returncode != 0:
        return 0
    return int(json.loads(out.stdout).get("beat", 0))


def test_ctrl_c_during_start_up_stops_cleanly(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    proc = spawn("run", "--no-live", "--state-dir", str(state), log=log, own_session=True)
    try:
        # The plugin processes are still importing when the server is up.
        wait_for((state / "run" / "plugins.json").exists, what="the plugin processes to start")
    finally:
        rc, err = stop(proc, log, signal.SIGINT)  # what Ctrl-C in a terminal does
    assert rc == 0, err
    assert not (state / "nats.url").exists()
    assert not (state / "run" / "plugins.json").exists()


def test_ctrl_c_to_the_process_group_stops_cleanly_with_every_beat_in_the_ledger(
    tmp_path: Path,
) -> None:
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    proc = spawn("run", "--no-live", "--state-dir", str(state), log=log, own_session=True)
    try:
        wait_for((state / "nats.url").exists, what="the embedded server")
        url = (state / "nats.url").read_text().strip()
        wait_for(lambda: beat_of(url) > 50, what="beats")
    finally:
        rc, err = stop(proc, log, signal.SIGINT)
    assert rc == 0, err
    beats = int(err.split("stopped after ")[1].split(" beats")[0])
    assert beats > 0
    verify = venom("ledger", "verify", "--state-dir", str(state))
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith(f"ok: {beats} entries")


def test_bench_startup_reports_each_phase_of_a_cold_start(tmp_path: Path) -> None:
    config = tmp_path / "venom.toml"
    config.write_text('[plugins]\nrun = ["regen-core", "balance-core", "thermal", "ledger"]\n')
    res = venom("bench", "startup", "--rounds", "1", "--config", str(config), "--json")
    assert res.returncode == 0, res.stderr
    figures = json.loads(res.stdout)
    assert (figures["runs"], figures["plugins"]) == (1, 4)
    server, first, every = (figures[k]["median"] for k in ("server", "first_beat", "all_plugins"))
    # Read from the artefacts: the URL file, then beat 1, then the beat by which all four
    # had answered (the ledger's records, in order).
    assert 0 < server <= first <= every
