"""Logging set-up: readable on a terminal, one JSON object per line otherwise.

Logging never waits for stderr. A record is formatted where it is logged
and put on a bounded queue (:data:`QUEUE_LINES` lines); one thread writes
the queue to stderr. A supervisor that reads stderr slowly, or a pipe that
nobody drains, then holds that thread and never the event loop: while the
queue is full new records are dropped and counted, and once there is room
again one line says how many (``logging: N records dropped: stderr was not
being read``), where they would have been.

At exit (``logging.shutdown``, which the logging module runs at exit) and
when :func:`setup_logging` replaces the handler, what is queued is written
out first, waiting at most :data:`EXIT_FLUSH_S` seconds for a stderr that
is not being read.

:func:`write_stderr` sends other text (a status line) the same way.

The thread writes with ``os.write`` to a duplicate of stderr's descriptor,
not through ``sys.stderr``: a write stuck in a full pipe then holds no lock
that the interpreter needs to exit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

#: Lines the queue holds; beyond them records are dropped (and counted).
QUEUE_LINES = 10_000
#: Longest wait, at exit, for the queue to reach a stderr that is not read.
EXIT_FLUSH_S = 3.0
#: The line that reports dropped records (its logger is ``venom.logs``).
DROPPED = "logging: %d records dropped: stderr was not being read"

_STOP = object()


class JsonFormatter(logging.Formatter):
    """``{"ts": ..., "level": ..., "logger": ..., "msg": ...}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def _fd_writer(fd: int, encoding: str) -> Callable[[str], None]:
    def write(text: str) -> None:
        data = memoryview(text.encode(encoding, "backslashreplace"))
        while data:
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:  # someone made the descriptor non-blocking
                select.select([], [fd], [])

    return write


def _stream_writer(stream: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return write


class QueuedStderrHandler(logging.Handler):
    """Formats records at once, writes them to ``stream`` from a thread of its own.

    ``stream`` (default ``sys.stderr``) is written through a duplicate of its
    descriptor when it has one, else (a test's capture) through the object.
    """

    def __init__(self, stream: TextIO | None = None, *, capacity: int = QUEUE_LINES) -> None:
        super().__init__()
        stream = sys.stderr if stream is None else stream
        self._fd: int | None = None
        try:
            stream.flush()  # what was written before us comes first
            self._fd = os.dup(stream.fileno())
            self._write = _fd_writer(self._fd, stream.encoding or "utf-8")
        except (AttributeError, OSError, ValueError):  # no descriptor (io.Unsupported...)
            self._write = _stream_writer(stream)
        self._queue: queue.Queue[object] = queue.Queue(capacity)
        #: Records dropped and not reported yet; guarded by _drops_lock, not by
        #: the handler's lock, which logging.shutdown holds while it flushes.
        self._dropped = 0
        self._drops_lock = threading.Lock()
        #: Records dropped since the handler was made.
        self.dropped_total = 0
        #: False once a flush has timed out: stderr is not being read.
        self._flowing = True
        self._thread = threading.Thread(target=self._run, name="venom-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self.write(line)

    def write(self, text: str) -> None:
        """Queue ``text`` as it is (no format, no newline added); dropped when full."""
        with self._drops_lock:
            try:
                if self._dropped:  # room again: first say what is missing here
                    self._queue.put_nowait(self._dropped_line(self._dropped))
                    self._dropped = 0
                self._queue.put_nowait(text)
            except queue.Full:
                self._dropped += 1
                self.dropped_total += 1

    def _dropped_line(self, count: int) -> str:
        record = logging.LogRecord(
            "venom.logs", logging.WARNING, __file__, 0, DROPPED, (count,), None
        )
        return self.format(record) + "\n"

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, str):
                self._write_out(item)
            if self._queue.empty():  # nothing logged since the drops: say so now
                with self._drops_lock:
                    count, self._dropped = self._dropped, 0
                if count:
                    self._write_out(self._dropped_line(count))
            if isinstance(item, threading.Event):  # a flush: all before it is written
                item.set()
            elif item is _STOP:
                return

    def _write_out(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # the reader is gone (EPIPE), or closed
            self._write(text)

    def drain(self, timeout: float) -> bool:
        """Wait until what is queued now is written; False after ``timeout`` seconds."""
        if not self._thread.is_alive():
            return False
        deadline = time.monotonic() + timeout
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def flush(self) -> None:
        """Write out the queue; wait at most EXIT_FLUSH_S (once: not again if it timed out)."""
        if self._flowing:
            self._flowing = self.drain(EXIT_FLUSH_S)

    def close(self) -> None:
        """Write out the queue and stop the thread (within EXIT_FLUSH_S); idempotent."""
        if self._thread.is_alive():
            timeout = EXIT_FLUSH_S if self._flowing else 0.1
            deadline = time.monotonic() + timeout
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=timeout)
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._fd is not None and not self._thread.is_alive():
            os.close(self._fd)
            self._fd = None
        super().close()


#: The handler setup_logging installed last.
_installed: QueuedStderrHandler | None = None


def write_stderr(text: str) -> None:
    """Write ``text`` to stderr the way log records go: queued, never waiting.

    For what is not a log record (a status line); before setup_logging, or
    after its handler was closed, written directly.
    """
    handler = _installed
    if handler is not None and handler._thread.is_alive():
        handler.write(text)
    else:
        sys.stderr.write(text)
        sys.stderr.flush()


def setup_logging(
    level: str = "info", *, json_lines: bool | None = None, stream: TextIO | None = None
) -> None:
    """Configure the root logger once for a venom process (``stream``: default stderr)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    stream = sys.stderr if stream is None else stream
    handler = QueuedStderrHandler(stream)
    if json_lines is None:
        json_lines = not stream.isatty()
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    old, root.handlers[:] = root.handlers[:], [handler]
    for previous in old:  # stopped once they have written what they hold
        if isinstance(previous, QueuedStderrHandler):
            previous.close()
    global _installed
    _installed = handler
    root.setLevel(numeric)
    logging.getLogger("nats").setLevel(max(numeric, logging.WARNING))
