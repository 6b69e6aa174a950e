"""No orphans, ever: every process the suite starts is gone when its test ends.

A pytest plugin (``tests/conftest.py`` loads it; ``-p tests.leakcheck`` in
any other run). At configure time it puts ``VENOMTEST_RUN=<marker>`` in
the environment, so every process started from here on carries it, in
whatever session it ends up (see :mod:`tests.processes`). Then:

- after each test, a process started during the test (its fixtures'
  included) that is still alive ``GRACE`` seconds later is killed, and the
  test errors at teardown naming it; those that a module- or
  session-scoped fixture started (the session's nats-server) live as long
  as their fixture and are left be, even when the fixture was first set up
  in the middle of a test (``request.getfixturevalue``);
- at the end of the session, every marked process still alive is killed
  and the run fails, naming them;
- SIGTERM to pytest (a CI timeout) interrupts it like Ctrl-C, so that the
  teardowns and the session-end check run.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest

from tests.processes import MARKER_VAR, describe, kill, marked, wait_gone

#: How long a process may take to exit by itself after its test (a worker
#: whose daemon was killed stops within seconds); after that it is a leak.
GRACE = 10.0

_MARKER = pytest.StashKey[str]()
_GRACE = pytest.StashKey[float]()
#: Set on Ctrl-C: the interrupted test's teardown runs at session end; kill, do not fail there.
_interrupted = threading.Event()
#: The processes each live module- or session-scoped fixture started (by fixture name).
_wider: dict[str, set[int]] = {}


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt (asyncio resets the handler after a daemon test)."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(
        signal.SIGTERM
    ) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _interrupt)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--leak-grace",
        type=float,
        default=GRACE,
        help=f"seconds a test's processes may take to exit after it (default {GRACE:g})",
    )


def pytest_configure(config: pytest.Config) -> None:
    marker = f"{os.getpid()}-{uuid.uuid4().hex}"
    os.environ[MARKER_VAR] = marker
    config.stash[_MARKER] = marker
    config.stash[_GRACE] = float(config.getoption("--leak-grace"))
    _interrupt_on_sigterm()


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    _interrupted.set()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Note what a wider-scoped fixture starts: it lives as long as the fixture."""
    if fixturedef.scope == "function":
        return (yield)
    marker = request.config.stash[_MARKER]
    before = set(marked(marker))
    try:
        return (yield)
    finally:
        _wider[fixturedef.argname] = set(marked(marker)) - before


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[Any]) -> None:
    _wider.pop(fixturedef.argname, None)


def _expected() -> set[int]:
    return set().union(*_wider.values())


def leftovers(marker: str, known: set[int], grace: float) -> dict[int, str]:
    """The marked processes not in ``known`` still alive after ``grace`` s, killed."""
    left = {pid: cmd for pid, cmd in marked(marker).items() if pid not in known}
    if not left:
        return {}
    survivors = set(wait_gone(left, grace))
    if not survivors:
        return {}
    left = {pid: cmd for pid, cmd in left.items() if pid in survivors}
    # A supervisor may start a replacement in the moment before it is killed.
    for _ in range(3):
        kill(left)
        more = {p: c for p, c in marked(marker).items() if p not in known and p not in left}
        if not more:
            break
        left.update(more)
    return left


@pytest.fixture(autouse=True)
def _no_orphans(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail (at teardown) a test that leaves a process it started running."""
    marker = request.config.stash[_MARKER]
    before = set(marked(marker))
    _interrupt_on_sigterm()
    yield
    left = leftovers(marker, before | _expected(), request.config.stash[_GRACE])
    if left and not _interrupted.is_set():
        pytest.fail(
            f"{len(left)} process(es) started by this test still ran after it, killed:\n"
            + describe(left),
            pytrace=False,
        )


@pytest.hookimpl(trylast=True)  # after the session fixtures' teardown
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    left = leftovers(config.stash[_MARKER], set(), config.stash[_GRACE])
    if not left:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    message = f"{len(left)} process(es) the suite started still ran at its end, killed:\n"
    message += describe(left)
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:
        print(message)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
