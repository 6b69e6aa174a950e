"""Logging never waits for stderr: a bounded queue, a writer thread, drops counted."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from venom.daemon.observe import logs
from venom.daemon.observe.logs import QueuedStderrHandler, setup_logging

DEADLINE = 120.0


def wait_for(cond: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    """Every test leaves the root logger as it found it, its own handlers closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


class GatedStream(io.StringIO):
    """A stderr with no descriptor whose writes wait until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def write(self, text: str) -> int:
        self.waiting.set()
        self.gate.wait(DEADLINE)
        return super().write(text)


def handler_on(stream: io.TextIOBase, capacity: int) -> tuple[QueuedStderrHandler, logging.Logger]:
    handler = QueuedStderrHandler(stream, capacity=capacity)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger(f"test.logs.{id(handler)}")
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    return handler, log


def test_a_full_queue_drops_counts_and_says_so_where_they_were() -> None:
    stream = GatedStream()
    handler, log = handler_on(stream, capacity=3)
    try:
        log.info("r0")
        wait_for(stream.waiting.is_set, "the writer stuck on r0")
        for i in range(1, 10):  # r1..r3 fill the queue; r4..r9 do not fit
            log.info("r%d", i)
        assert handler.dropped_total == 6
        stream.gate.set()
        wait_for(lambda: "r3" in stream.getvalue(), "room in the queue")
        log.info("after")
        assert handler.drain(DEADLINE)
    finally:
        stream.gate.set()
        handler.close()
    assert stream.getvalue().splitlines() == [
        "r0",
        "r1",
        "r2",
        "r3",
        "logging: 6 records dropped: stderr was not being read",
        "after",
    ]


def test_drops_are_reported_even_when_nothing_is_logged_after_them() -> None:
    stream = GatedStream()
    handler, log = handler_on(stream, capacity=1)
    try:
        log.info("r0")
        wait_for(stream.waiting.is_set, "the writer stuck on r0")
        for i in range(1, 4):
            log.info("r%d", i)
        stream.gate.set()
        wait_for(lambda: "dropped" in stream.getvalue(), "the dropped line")
    finally:
        stream.gate.set()
        handler.close()
    assert stream.getvalue().splitlines() == [
        "r0",
        "r1",
        "logging: 2 records dropped: stderr was not being read",
    ]


def test_an_unread_pipe_never_holds_the_logger_and_order_is_kept() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        handler, log = handler_on(stream, capacity=100)
        try:
            i = 0
            while not handler.dropped_total and i < 1_000_000:  # the pipe fills, the queue
                log.info("record %d %s", i, "x" * 100)
                i += 1
            dropped = handler.dropped_total
            chunks: list[bytes] = []
            reader = threading.Thread(target=read_all, args=(read_end, chunks))
            reader.start()
            wait_for(lambda: b"dropped" in b"".join(chunks), "room in the queue")
            log.info("after")
            assert handler.drain(DEADLINE)
        finally:
            handler.close()
    reader.join(DEADLINE)
    os.close(read_end)
    lines = b"".join(chunks).decode().splitlines()
    assert lines[-2:] == [f"logging: {dropped} records dropped: stderr was not being read", "after"]
    numbers = [int(line.split()[1]) for line in lines[:-2]]
    assert numbers == list(range(len(numbers)))  # what was kept, in order, without a gap
    assert len(numbers) + dropped == i


def read_all(fd: int, chunks: list[bytes]) -> None:
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)


def test_many_records_in_order_through_a_pipe() -> None:
    read_end, write_end = os.pipe()
    chunks: list[bytes] = []
    reader = threading.Thread(target=read_all, args=(read_end, chunks))
    reader.start()
    with os.fdopen(write_end, "w") as stream:
        handler, log = handler_on(stream, capacity=logs.QUEUE_LINES)
        try:
            for i in range(3000):
                log.info("%d", i)
            assert handler.drain(DEADLINE)
        finally:
            handler.close()
    reader.join(DEADLINE)
    os.close(read_end)
    assert b"".join(chunks).decode().splitlines() == [str(i) for i in range(3000)]
    assert handler.dropped_total == 0


def test_the_formats_are_unchanged() -> None:
    stream = io.StringIO()
    setup_logging("info", json_lines=True, stream=stream)
    logging.getLogger("venom.x").info("hello %s", "ü")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("venom.y").exception("failed")
    setup_logging("info", json_lines=False, stream=stream)  # closes the first: written out
    logging.getLogger("venom.z").warning("plain")
    logging.getLogger().handlers[0].close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = lines
    entry = json.loads(first)
    assert set(entry) == {"ts", "level", "logger", "msg"}
    assert (entry["level"], entry["logger"], entry["msg"]) == ("info", "venom.x", "hello ü")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    assert "ValueError: bad" in json.loads(second)["exc"]
    assert re.fullmatch(r"\d\d:\d\d:\d\d WARNING venom.z: plain", third)


def test_setting_up_again_stops_the_old_writer() -> None:
    before = {t for t in threading.enumerate() if t.name == "venom-log-writer"}
    stream = io.StringIO()
    setup_logging("info", json_lines=False, stream=stream)
    setup_logging("info", json_lines=False, stream=stream)
    writers = {t for t in threading.enumerate() if t.name == "venom-log-writer"} - before
    assert len(writers) == 1


def test_write_stderr_goes_the_same_way_and_never_waits() -> None:
    stream = GatedStream()
    setup_logging("info", json_lines=False, stream=stream)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, QueuedStderrHandler)
    logging.getLogger("venom.x").info("first")
    wait_for(stream.waiting.is_set, "the writer stuck on the first line")
    for i in range(logs.QUEUE_LINES + 5):  # all but QUEUE_LINES of them dropped
        logs.write_stderr(f"status {i}\n")
    assert handler.dropped_total == 5
    stream.gate.set()
    assert handler.drain(DEADLINE)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("venom.x: first")
    assert lines[1:-1] == [f"status {i}" for i in range(logs.QUEUE_LINES)]
    assert lines[-1].endswith("logging: 5 records dropped: stderr was not being read")


PROGRAM = """
import logging, sys
from venom.daemon.observe.logs import setup_logging
setup_logging("info", json_lines=True)
log = logging.getLogger("venom.test")
for i in range(int(sys.argv[1])):
    log.info("record %d %s", i, "x" * 200)
log.info("stopped after %s records", sys.argv[1])
"""


def run_program(records: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(records)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_a_normal_exit_writes_the_last_lines() -> None:
    proc = run_program(5000)
    try:
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        proc.kill()
        proc.wait()
    texts = [json.loads(line)["msg"] for line in (err or b"").decode().splitlines()]
    assert proc.returncode == 0
    assert texts[-1] == "stopped after 5000 records"
    assert [int(t.split()[1]) for t in texts[:-1]] == list(range(5000))


def test_an_exit_with_stderr_never_read_does_not_hang() -> None:
    proc = run_program(30000)  # far beyond the pipe and the queue
    try:
        assert proc.wait(timeout=DEADLINE) == 0  # stderr unread all along
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    assert json.loads(first)["msg"].startswith("record 0 ")
