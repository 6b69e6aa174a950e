"""CPU time of this process and everything it started, read from ``/proc``.

``venom bench daemon`` uses it to say what a beat costs in each process
(the arbiter, each plugin worker, the ledger, nats-server): the user+system
time in ``/proc/<pid>/stat`` of this process and its descendants, each
labelled by what it runs. Linux only; elsewhere :func:`sample` is empty.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> bytes | None:
    """The whole of a small ``/proc`` file (no text layer: one open, reads, close)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of ``pid``, or None when it is gone."""
    data = _read(f"{PROC}/{pid}/stat")
    if not data:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = data[data.rindex(b")") + 2 :].split()
    ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
    return ppid, (utime + stime) / _TICK


def label(pid: int) -> str:
    """What ``pid`` runs: ``nats-server``, ``plugins <names>``, or its command name."""
    try:
        argv = (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    args = [a.decode(errors="replace") for a in argv if a]
    if not args:
        return f"pid {pid}"
    if Path(args[0]).name.startswith("nats-server"):
        return "nats-server"
    if "plugin" in args and "run" in args:
        start = args.index("run") + 1
        names = []
        for arg in args[start:]:
            if arg.startswith("-"):
                break
            names.append(arg)
        return "plugins " + ",".join(names)
    return Path(args[0]).name


def _tree(root: int) -> list[int] | None:
    """``root`` and its descendants, from each thread's ``children`` file.

    None where the kernel has no such file (or ``root`` is gone): then the
    caller scans every process instead.
    """
    pids = [root]
    for pid in pids:  # grows as children are found: breadth first
        try:
            tids = os.listdir(f"{PROC}/{pid}/task")
        except OSError:
            if pid == root:
                return None
            continue  # gone meanwhile
        for tid in tids:
            data = _read(f"{PROC}/{pid}/task/{tid}/children")
            if data is None:
                if pid == root:
                    return None
                continue
            pids.extend(int(child) for child in data.split())
    return pids


def sample(root: int | None = None) -> dict[int, float]:
    """CPU seconds of ``root`` (this process) and each of its descendants, by pid.

    Reads only that tree's files where the kernel lists each thread's
    children (a sample costs a few dozen syscalls, not seven per process on
    the machine); scans all of ``/proc`` elsewhere.
    """
    root = os.getpid() if root is None else root
    if not PROC.is_dir():
        return {}
    tree = _tree(root)
    if tree is not None:
        cpu: dict[int, float] = {}
        for pid in tree:
            got = _stat(pid)
            if got is not None:
                cpu[pid] = got[1]
        return cpu
    return _scan(root)


def _scan(root: int) -> dict[int, float]:
    """:func:`sample` from every process's ``stat`` (parent links)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        got = _stat(int(entry.name))
        if got is not None:
            parents[int(entry.name)], cpu[int(entry.name)] = got
    wanted = {root}
    grew = True
    while grew:  # the tree is shallow: a few passes
        grew = False
        for pid, ppid in parents.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                grew = True
    return {pid: cpu[pid] for pid in wanted if pid in cpu}


def per_process(
    first: dict[int, float], last: dict[int, float], labels: dict[int, str]
) -> dict[str, float]:
    """CPU seconds spent between two samples, by label (same labels summed)."""
    out: dict[str, float] = {}
    for pid, end in last.items():
        name = labels.get(pid) or label(pid)
        out[name] = out.get(name, 0.0) + end - first.get(pid, 0.0)
    return out
