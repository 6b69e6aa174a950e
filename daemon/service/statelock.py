"""One ``venom run`` per state directory: a lock file that names its holder.

:class:`StateLock` takes an exclusive ``flock`` on ``<state>/venom.lock`` and
writes the daemon's pid in it; a second daemon on the same directory is
refused with :class:`StateDirInUse`, one line naming that pid. The kernel
drops the lock when its holder exits, ``kill -9`` included, so a stale lock
file never blocks a restart; the descriptor is not inherited, so a plugin
process left behind does not hold it either::

    with StateLock(state_dir):
        ...  # the embedded server, the plugins, the beat loop
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from venom.schemas import StateDirInUse

__all__ = ["LOCK_NAME", "StateLock"]

LOCK_NAME = "venom.lock"


def _holder(fd: int) -> str:
    """Who holds the lock, from the pid it wrote ("another process" while it writes)."""
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another process"


class StateLock:
    """An exclusive, non-blocking lock on ``<state_dir>/venom.lock`` holding this pid."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / LOCK_NAME
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> None:
        """Take the lock, or raise :class:`StateDirInUse` naming its holder."""
        if self.held:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StateDirInUse(
                f"state directory {self.state_dir} is in use by {holder} ({self.path}); "
                "stop that venom or use another --state-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Empty the file and drop the lock (the file stays: unlinking it would race)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
