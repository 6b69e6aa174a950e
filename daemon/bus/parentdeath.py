"""Child processes that die with venom, even when venom is killed with ``kill -9``.

Linux's ``PR_SET_PDEATHSIG`` has the kernel send a signal to a process when
its parent goes. Two ways in:

- :func:`parent_death_hook`: a ``preexec_fn`` for a child venom starts
  (the embedded nats-server);
- :func:`die_with_parent`: a child that venom starts asks for it itself, as
  early as it can (a plugin worker, before its imports).

The kernel sends the signal when the *thread* that forked the child exits,
so the promise holds only for children forked from the main thread; both
functions check for the race where the parent died before the request.
Elsewhere (not Linux) they promise nothing and the children must watch
their parent themselves.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["die_with_parent", "parent_death_hook"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, loaded before any fork (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def parent_death_hook(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent ``sig`` when this process dies.

    None off Linux and off the main thread: a worker thread may exit long
    before the process, and its children would get the signal then.
    """
    prctl = _prctl()
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent, number = os.getpid(), int(sig)

    def hook() -> None:  # runs in the child, between fork and exec
        prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: no signal will come
            os._exit(1)

    return hook


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> bool:
    """Have this process sent ``sig`` when ``parent`` (its parent) dies; False off Linux.

    Call it first thing: until a handler for ``sig`` is installed, the
    signal ends the process at once. A parent already gone sends it now.
    """
    prctl = _prctl()
    if prctl is None or prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)
    return True
