"""A plugin package from `venom plugin new`, pip-installed, joins a real beat.

The packages are installed for real (``pip install --target``, offline, no
build isolation) and found through their ``venom.plugins`` entry point by
``venom`` processes that get the target on ``PYTHONPATH``. A package whose
class is malformed must be refused by name, by ``venom plugin run`` and by
``venom run``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.helpers import make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.natsbus import NatsBus
from venom.schemas import BeatRecord, Codec, GuardVerdict, Subjects, Telemetry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VENOM = [sys.executable, "-m", "venom.daemon"]
GUARD = "ep-guard"


def env_with(site: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def venom(site: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VENOM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env_with(site),
    )


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site dir with ep-guard and two broken plugins, installed by pip."""
    root = tmp_path_factory.mktemp("packages")
    new = venom(root, "plugin", "new", GUARD, "--dir", str(root))
    assert new.returncode == 0, new.stderr
    assert str(root / f"venom-{GUARD}" / "pyproject.toml") in new.stdout.splitlines()
    for name in ("broken-x", "broken-y"):
        assert venom(root, "plugin", "new", name, "--dir", str(root)).returncode == 0
    edit(
        root / "venom-broken-x/src/venom_broken_x/plugin.py",
        'version: ClassVar[str] = "0.1.0"',
        'version: ClassVar[str] = "one"',
    )
    edit(
        root / "venom-broken-y/src/venom_broken_y/plugin.py",
        "    async def handle(",
        "    def handle(",
    )
    target = root / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *(str(root / f"venom-{n}") for n in (GUARD, "broken-x", "broken-y")),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return target


def test_the_installed_package_is_listed(site: Path) -> None:
    res = venom(site, "plugin", "list", "--json")
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert found[GUARD] == "venom_ep_guard.plugin:EpGuard"
    assert found["thermal"] == "venom.plugins.guards.thermal:ThermalGuard"


async def wait_until(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    try:
        with anyio.fail_after(timeout):
            while not cond():
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@pytest.mark.anyio
async def test_it_joins_the_beat_and_vetoes(site: Path, nats_url: str, tmp_path: Path) -> None:
    prefix = "epguard"
    cfg = tmp_path / "venom.toml"
    cfg.write_text(
        f'[nats]\nprefix = "{prefix}"\n'
        f'[plugins.settings.{GUARD}]\nfeature = "probe.temp"\nlimit = 50.0\n'
    )
    args = ["plugin", "run", GUARD, "--config", str(cfg), "--nats", nats_url]
    proc = subprocess.Popen(
        [*VENOM, *args, "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with(site),
    )
    records: list[BeatRecord] = []

    async def sink(record: BeatRecord) -> None:
        records.append(record)

    def verdicts(temp: float | None = None) -> list[tuple[BeatRecord, GuardVerdict]]:
        out = []
        for r in records:
            v = r.replies.get(GUARD)
            if isinstance(v, GuardVerdict) and (temp is None or v.metric == temp):
                out.append((r, v))
        return out

    def answered(temp: float) -> Callable[[], bool]:
        return lambda: bool(verdicts(temp))

    codec = Codec()
    subjects = Subjects(prefix)
    bus = await NatsBus.connect(nats_url, name="t-entrypoint")
    config = make_config(prefix=prefix, period=0.05, deadline=0.04)
    arbiter = Arbiter(bus, config, record_sink=sink)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(arbiter.run)
            # Heard by reply or by discovery first: its role and version follow
            # within one discovery round either way.
            await wait_until(
                lambda: (
                    (live := arbiter.discovery.plugins.get(GUARD)) is not None
                    and (live.role, live.version) == ("guard", "0.1.0")
                ),
                "discovery of its role and version",
            )
            await wait_until(lambda: bool(verdicts()), "its first verdict")
            first = verdicts()[0][1]
            assert first.allow
            assert first.reason == "probe.temp not measured"

            for temp in (20.0, 95.0):
                telemetry = Telemetry(source="probe", values={"temp": temp})
                await bus.publish(subjects.telemetry("probe"), codec.encode(telemetry))
                await wait_until(answered(temp), f"a verdict on {temp}")
            arbiter.stop()
    finally:
        await bus.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err

    cool = verdicts(20.0)[0]
    assert cool[1].allow
    assert GUARD not in cool[0].decision.vetoes
    hot_record, hot = verdicts(95.0)[0]
    assert not hot.allow
    assert hot.severity == "critical"
    assert hot.reason == "probe.temp 95.0 above 50"
    assert GUARD in hot_record.decision.vetoes
    assert hot_record.decision.action in ("ALERT", "QUARANTINE")
    assert GUARD in hot_record.report.replied


BROKEN = [
    ("broken-x", "version 'one' is not semantic (x.y.z)"),
    ("broken-y", "handle must be an async def"),
]


def refusals(site: Path, nats_url: str, tmp_path: Path, name: str) -> list[str]:
    """stderr of `venom plugin run NAME` and of `venom run` with NAME in plugins.run."""
    state = ["--state-dir", str(tmp_path / "state")]
    plugin_run = venom(site, "plugin", "run", name, "--nats", nats_url, *state, timeout=30)
    assert plugin_run.returncode != 0
    cfg = tmp_path / "venom.toml"
    cfg.write_text(f'[nats]\nprefix = "broken"\n[plugins]\nrun = ["thermal", "{name}"]\n')
    daemon = venom(site, "run", "--config", str(cfg), "--nats", nats_url, "--beats", "5", *state)
    assert daemon.returncode != 0
    assert "stopped after" not in daemon.stderr
    return [plugin_run.stderr, daemon.stderr]


@pytest.mark.parametrize(("name", "problem"), BROKEN)
def test_a_broken_package_is_refused_naming_it(
    site: Path, nats_url: str, tmp_path: Path, name: str, problem: str
) -> None:
    for stderr in refusals(site, nats_url, tmp_path, name):
        assert f"plugin '{name}': {problem}" in stderr


def test_the_refusal_is_one_line(site: Path, nats_url: str, tmp_path: Path) -> None:
    name, problem = BROKEN[0]
    for stderr in refusals(site, nats_url, tmp_path, name):
        assert stderr.strip().splitlines()[-1] == f"venom: error: plugin '{name}': {problem}"
