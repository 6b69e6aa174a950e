"""The disk under the embedded server's JetStream store: named when full, recovered after.

nats-server answers nothing to a publish it cannot write (the client times
out) and logs ``no space left on device``; after one failed write its file
store keeps failing until the server starts again, even once space is back.
:class:`StoreDisk` (a background task of ``venom run`` with the embedded
server) reads the server's log while beat records wait for their acks,
names the full disk once, in the log and in the status (its path and what
is free), and, once there is room again, restarts the server so the stream
takes the records waiting (in memory and in the spill file), in order.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anyio

from venom.daemon.bus.beatstream import BeatPublisher
from venom.daemon.bus.embedded import EmbeddedServer

log = logging.getLogger("venom.run")

FULL = b"no space left on device"
#: Room that counts as "space again": what waits, and this much more.
MIN_FREE = 1 << 20
_READ_AT_MOST = 1 << 16


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def disk_space(path: Path) -> tuple[int, int]:
    """(free bytes for this user, size) of the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


class StoreDisk:
    """Watches the embedded server's store while the beat stream does not ack."""

    def __init__(self, server: EmbeddedServer, publisher: BeatPublisher) -> None:
        self.server = server
        self.publisher = publisher
        self.store = server.store_dir / "jetstream"
        #: Names the full disk ("" while it is not full): for the status and the hold.
        self.full = ""
        self._log_at = 0

    def _server_said_full(self) -> bool:
        """The server's log, since the last look, says a write found no space."""
        try:
            with self.server.log_path.open("rb") as f:
                end = f.seek(0, os.SEEK_END)
                start = max(self._log_at, end - _READ_AT_MOST)
                if end < self._log_at:  # a new log
                    start = max(0, end - _READ_AT_MOST)
                f.seek(start)
                text = f.read(end - start)
        except OSError:
            return False
        self._log_at = end
        return FULL in text

    def check(self) -> bool:
        """Look once; True when the server should start again (space is back)."""
        said_full = self._server_said_full()
        if not self.full:
            if said_full and self.publisher.backlog:
                free, size = disk_space(self.store)
                self.full = f"the disk of {self.store} is full ({_mib(free)} free of {_mib(size)})"
                spill = self.publisher.spill
                log.error(
                    "%s: nats-server cannot store beat records; they wait %s; "
                    "free space there and the server starts again by itself",
                    self.full,
                    f"in memory and in {spill.path}" if spill is not None else "in memory",
                )
            return False
        free, _ = disk_space(self.store)
        if free < MIN_FREE + self.publisher.waiting_bytes:
            return False
        log.warning(
            "%s free on %s again: restarting the embedded nats-server (its store "
            "stops writing after a full disk); %d beat records to send",
            _mib(free),
            self.store,
            self.publisher.backlog,
        )
        self.full = ""
        return True

    async def watch(self, every: float = 1.0) -> None:
        """Check every ``every`` seconds while records wait (a background task)."""
        while True:
            await anyio.sleep(every)
            if not self.full and not self.publisher.backlog:
                self._server_said_full()  # keep up with the log
                continue
            if self.check():
                await self.server.arestart()
