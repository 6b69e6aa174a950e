"""The processes a test run starts, found in ``/proc`` and killed (Linux).

Every process the suite starts inherits ``VENOMTEST_RUN=<marker>`` from the
pytest process (``tests/leakcheck.py`` sets it), whatever session or parent
it ends up with: :func:`marked` finds them all by that variable, even those
orphaned to pid 1. :func:`kill_tree` and :func:`reaped` stop one process and
everything below it, the way a test's cleanup should.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

MARKER_VAR = "VENOMTEST_RUN"  # not VENOM_*: venom reads those as config

P = TypeVar("P", bound="subprocess.Popen[Any]")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``; None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie has exited: it only waits to be reaped)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def cmdline(pid: int) -> str:
    """The command line of ``pid``, spaces between its arguments ('' once gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def marked(marker: str) -> dict[int, str]:
    """pid → command line of every live process (not this one) started with the marker."""
    entry = f"{MARKER_VAR}={marker}".encode()
    found: dict[int, str] = {}
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if entry in environ.split(b"\0") and alive(pid):
            found[pid] = cmdline(pid)
    return found


def descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (children first, then theirs)."""
    children: dict[int, list[int]] = {}
    for p in _pids():
        stat = _stat(p)
        if stat is not None and stat[0] not in ("Z", "X"):
            children.setdefault(stat[1], []).append(p)
    found: list[int] = []
    todo = [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` s for ``pids`` to exit; those still alive."""
    left = [p for p in pids if alive(p)]
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def kill(pids: Iterable[int], timeout: float = 10.0) -> list[int]:
    """SIGKILL ``pids`` and wait until they are gone; those that would not go."""
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return wait_gone(pids, timeout)


def kill_tree(pid: int, timeout: float = 10.0) -> list[int]:
    """SIGKILL ``pid`` and every process below it, in whatever session.

    The tree is read before anything is killed: once ``pid`` dies, its
    children belong to pid 1 and no longer look like its own.
    """
    return kill([pid, *descendants(pid)], timeout)


def describe(procs: dict[int, str]) -> str:
    """One line per process: its pid and (the start of) its command line."""
    return "\n".join(f"  pid {pid}: {cmd[:300] or '?'}" for pid, cmd in sorted(procs.items()))


@contextlib.contextmanager
def reaped(proc: P) -> Iterator[P]:
    """Yield ``proc``; on the way out (pass, fail, Ctrl-C) kill it and its tree, reap it.

    A no-op for a process the test already stopped.
    """
    try:
        yield proc
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        proc.wait()
