"""``venom plugin run``: plugins as their own process.

:func:`place_plugins` decides which plugins run in the daemon and which in
its worker processes; :func:`run_plugins` hosts plugins until SIGINT/SIGTERM
(or until the daemon that started it is gone), telling systemd and the
health endpoint how it is, with the set-up the daemon uses
(:class:`~venom.daemon.service.lifecycle.Process`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from venom.daemon.config.settings import VenomConfig
from venom.daemon.service.lifecycle import Process
from venom.daemon.service.supervisor import split
from venom.plugins.registry import load_plugin_class
from venom.schemas import VenomError

log = logging.getLogger("venom.run")


def place_plugins(config: VenomConfig) -> tuple[list[str], list[list[str]]]:
    """(hosted in the daemon, groups hosted in plugin processes) from ``plugins.run``.

    With ``plugins.processes = N >= 1`` the plugins are split in N processes,
    in the order of ``run``, except those in ``plugins.alone``, which get a
    process each; with 0 every plugin runs in the daemon. Every name is
    checked here, before any process starts.

    One process for the whole default set is what fits a small machine best:
    each process a pulse wakes costs its receive, its reply and the server's
    copies (docs/catalog.md, Cost, has the figures).
    """
    for spec in config.plugins.run:
        load_plugin_class(spec)
    if config.plugins.processes == 0:
        return list(config.plugins.run), []
    alone = set(config.plugins.alone)
    shared = [spec for spec in config.plugins.run if spec not in alone]
    groups = split(shared, config.plugins.processes) if shared else []
    return [], groups + [[spec] for spec in config.plugins.run if spec in alone]


async def _watch_parent(parent: int, on_stop: Any) -> None:
    """Stop when the daemon that started this process is gone (even by kill -9)."""
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us; poll
        await anyio.sleep(0.5)
    log.warning("parent process %d is gone: stopping", parent)
    on_stop()


async def run_plugins(
    config: VenomConfig, names: list[str], url: str, state_dir: Path, *, parent: int = 0
) -> None:
    """Host ``names`` as their own process until SIGINT/SIGTERM (or ``parent`` exits).

    Signals are watched from the first moment: one that comes while the
    plugins start lets them finish starting and then stops them in order
    (a ledger restarted a moment before the daemon stops still drains the
    stream); a second one stops at once. Under systemd: ``READY=1`` once the
    plugins answer, ``WATCHDOG=1`` while the event loop turns, ``STOPPING=1``.
    """
    process = Process(config, "plugins", telemetry_role="plugin")
    stopped = anyio.Event()

    def stop() -> None:
        process.state.stop()
        stopped.set()

    async def body() -> None:
        async with anyio.create_task_group() as tg:
            if parent:
                tg.start_soon(_watch_parent, parent, stop)
            try:
                await _host_until(process, names, url, state_dir, stopped, parent)
            except Exception as exc:
                if parent:  # the supervisor gives up on a child that keeps failing this way
                    _tell_parent(f"error: {_reason(exc)}")
                raise
            tg.cancel_scope.cancel()

    await process.serve(body, stop)


def _reason(exc: BaseException) -> str:
    """One line for what stopped the start (a venom error says it already)."""
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    text = str(exc) if isinstance(exc, VenomError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _tell_parent(line: str) -> None:
    """A line on stdout for ``venom run``'s supervisor (see supervisor.py).

    A daemon that is gone cannot read it: then nothing is said (the parent
    watch stops this process).
    """
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Later flushes (at exit) must not raise again on the same pipe.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


async def _host_until(
    process: Process,
    names: list[str],
    url: str,
    state_dir: Path,
    stopped: anyio.Event,
    parent: int,
) -> None:
    state = process.state
    async with AsyncExitStack() as stack:
        await process.open(stack, metrics=False)
        bus = await process.connect(stack, url, f"venom-plugin-{'-'.join(names)}"[:60])
        plugins = await process.host(stack, names, bus, state_dir)
        listed = ", ".join(p.name for p in plugins)
        log.info("plugin(s) %s answering on %s", listed, url)
        state.readiness = lambda: (True, "") if bus.connected else (False, "NATS connection lost")
        state.describe = lambda: f"answering for {listed}"
        # Start-up garbage (torch, numpy, the plugins) is permanent: keep the
        # collector from walking it while a pulse waits.
        gc.collect()
        gc.freeze()
        if parent:
            _tell_parent("ready")
        while not stopped.is_set():
            state.turn()
            with anyio.move_on_after(min(1.0, state.notifier.watchdog_interval or 1.0)):
                await stopped.wait()
