"""venom plugin new: the generated package's own tests pass as generated."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from venom.daemon.cli.main import main
from venom.daemon.cli.scaffold import SCAFFOLD_ROLES, class_name, render, scaffold_plugin
from venom.plugins import validate_plugin
from venom.schemas import ConfigError

FILES = [
    "pyproject.toml",
    "README.md",
    "src/venom_{m}/__init__.py",
    "src/venom_{m}/plugin.py",
    "tests/test_plugin.py",
]


def run_pytest(pkg: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pkg / "src")}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=pkg,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("role", SCAFFOLD_ROLES)
def test_every_role_scaffolds_a_package_whose_tests_pass(tmp_path: Path, role: str) -> None:
    name = f"probe-{role}"
    written = scaffold_plugin(name, directory=tmp_path, role=role)
    pkg = tmp_path / f"venom-{name}"
    module = f"probe_{role}"
    assert written == [pkg / f.format(m=module) for f in FILES]

    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    cls = class_name(name, role)
    assert cls == f"Probe{role.capitalize()}"
    assert meta["project"]["name"] == f"venom-{name}"
    assert "venom" in meta["project"]["dependencies"]
    assert meta["project"]["entry-points"]["venom.plugins"] == {
        name: f"venom_{module}.plugin:{cls}"
    }

    # The generated class is a valid plugin of the chosen role.
    sys.path.insert(0, str(pkg / "src"))
    try:
        loaded = importlib.import_module(f"venom_{module}.plugin")
        plugin = validate_plugin(getattr(loaded, cls))
    finally:
        sys.path.remove(str(pkg / "src"))
        for mod in [m for m in sys.modules if m.startswith(f"venom_{module}")]:
            del sys.modules[mod]
    assert plugin.name == name
    assert plugin.role == role

    res = run_pytest(pkg)
    assert res.returncode == 0, res.stdout + res.stderr
    assert " passed" in res.stdout
    assert "failed" not in res.stdout


def test_the_readme_says_how_to_test_install_and_run() -> None:
    readme = render("hot-guard", "guard")["README.md"]
    assert "python -m pytest" in readme
    assert "pip install -e ./venom-hot-guard" in readme
    assert "venom plugin run hot-guard --nats" in readme
    assert "[plugins.settings.hot-guard]" in readme
    assert "plugins.run" in readme


def test_class_names() -> None:
    assert class_name("hot-guard", "guard") == "HotGuard"
    assert class_name("hot", "guard") == "HotGuard"
    assert class_name("ema", "estimator") == "EmaEstimator"
    assert class_name("3d-scan", "sensor") == "Plugin3dScanSensor"


@pytest.mark.parametrize("name", ["Hot", "hot_guard", "-hot", "", "a" * 64, "hot guard", "hé"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="must be lowercase letters, digits and dashes"):
        scaffold_plugin(name, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="role 'ledger' must be one of guard, estimator"):
        scaffold_plugin("x", directory=tmp_path, role="ledger")


def test_an_installed_plugins_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'thermal' is already installed \(venom.plugins"):
        scaffold_plugin("thermal", directory=tmp_path)


def test_an_existing_package_is_kept_unless_forced(tmp_path: Path) -> None:
    pkg = tmp_path / "venom-hot"
    pkg.mkdir()  # empty: fine
    scaffold_plugin("hot", directory=tmp_path)
    plugin = pkg / "src/venom_hot/plugin.py"
    plugin.write_text("# edited\n")
    (pkg / "NOTES").write_text("mine\n")
    with pytest.raises(ConfigError, match=r"venom-hot exists and is not empty \(--force"):
        scaffold_plugin("hot", directory=tmp_path, role="estimator")
    assert plugin.read_text() == "# edited\n"
    scaffold_plugin("hot", directory=tmp_path, role="estimator", force=True)
    assert "class HotEstimator(" in plugin.read_text()
    assert (pkg / "NOTES").read_text() == "mine\n"
    (tmp_path / "venom-file").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        scaffold_plugin("file", directory=tmp_path, force=True)


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugin", "new", "cli-guard", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == str(tmp_path / "venom-cli-guard" / "pyproject.toml")
    assert len(out) == 5
    assert main(["plugin", "new", "cli-guard", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("venom: error: ")
    assert "exists and is not empty" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["plugin", "new", "Bad_Name", "--dir", str(tmp_path)]) == 1
    assert "'Bad_Name' must be lowercase" in capsys.readouterr().err
    args = ["plugin", "new", "m", "--role", "model", "--dir", str(tmp_path)]
    assert main(args) == 0
    assert "class MModel(" in (tmp_path / "venom-m/src/venom_m/plugin.py").read_text()
