"""``venom`` main(): what each kind of failure prints and exits with."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from venom.daemon.cli import main as cli
from venom.schemas import ConfigError


@pytest.fixture(autouse=True)
def root_logging() -> Iterator[None]:
    """main() sets up logging for a process: give the next test the root logger back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_venom_error_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(args: argparse.Namespace) -> int:
        raise ConfigError("must be > 0", key="beat.deadline")

    monkeypatch.setitem(cli.COMMANDS, "schema", refuse)
    assert cli.main(["schema", "export", "x"]) == 1
    assert capsys.readouterr().err == "venom: error: beat.deadline: must be > 0\n"


def test_an_unexpected_exception_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bug(args: argparse.Namespace) -> int:
        raise KeyError("a\nkey")

    monkeypatch.setitem(cli.COMMANDS, "schema", bug)
    assert cli.main(["schema", "export", "x"]) == cli.INTERNAL_ERROR == 70
    err = capsys.readouterr().err
    assert err == "venom: internal error: KeyError: 'a\\nkey' (please report)\n"


def test_an_exception_group_reports_its_first_exception(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bugs(args: argparse.Namespace) -> int:
        raise ExceptionGroup("tasks", [ExceptionGroup("inner", [ZeroDivisionError("x")])])

    monkeypatch.setitem(cli.COMMANDS, "schema", bugs)
    assert cli.main(["schema", "export", "x"]) == 70
    assert "internal error: ZeroDivisionError: x (please report)" in capsys.readouterr().err


def test_version_names_the_package_and_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"venom {version('venom')} (schema 1)"
