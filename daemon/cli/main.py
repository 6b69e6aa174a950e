"""The ``venom`` command line (SPEC 10).

Every command has ``--help``, exits 0 on success and non-zero with a
one-line reason on failure; data commands take ``--json``. Bad input
(config, flags, files) exits 1 with ``venom: error: ...`` (argparse: 2);
an unexpected exception, which is a bug, exits 70 with ``venom: internal
error: ...`` (the traceback is logged at ``--log-level debug``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from venom.daemon.cli.parser import build_parser
from venom.schemas import ConfigError, Subjects, VenomError, export_schemas

log = logging.getLogger("venom.cli")

#: Exit code of an unexpected exception (EX_SOFTWARE, sysexits.h).
INTERNAL_ERROR = 70


def _load(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Any:
    from venom.daemon.config.load import load_config

    path = Path(args.config) if getattr(args, "config", None) else None
    return load_config(path, env=os.environ, overrides=overrides or {})


def _state_dir(args: argparse.Namespace, config: Any) -> Path:
    from venom.daemon.config.load import resolve_state_dir

    return resolve_state_dir(getattr(args, "state_dir", None), config, os.environ)


def _nats_url(args: argparse.Namespace, config: Any) -> str:
    if getattr(args, "nats", None):
        return str(args.nats)
    if config.nats.url:
        return str(config.nats.url)
    from venom.daemon.config.load import resolve_state_dir
    from venom.daemon.service.run import URL_FILE

    url_file = resolve_state_dir(getattr(args, "state_dir", None), config, os.environ) / URL_FILE
    if url_file.exists():
        return url_file.read_text().strip()
    raise ConfigError(
        "no NATS server: give --nats URL, set VENOM_NATS_URL, or start "
        "`venom run` (its embedded server's URL is kept in the state dir)",
        key="nats.url",
    )


def _embedded_login(args: argparse.Namespace, config: Any, names: list[str]) -> Any:
    """``config`` logged in as the embedded server's plugin (or ledger) user.

    Only when the URL is the one ``venom run`` keeps in the state dir and no
    credentials are configured; an embedded server without credentials
    (``embedded.credentials = false``) has no credentials file.
    """
    n = config.nats
    if getattr(args, "nats", None) or n.url or n.user or n.token or n.credentials:
        return config
    from venom.daemon.bus.credentials import CREDENTIALS_NAME, load_credentials, login_for
    from venom.daemon.service.lifecycle import with_login
    from venom.daemon.service.supervisor import plugin_class_names

    state_dir = _state_dir(args, config)
    if not (state_dir / CREDENTIALS_NAME).exists():
        return config
    user = login_for(plugin_class_names(names))
    return with_login(config, (user, load_credentials(state_dir)[user]))


async def _with_bus(url: str, config: Any, fn: Callable[[Any], Awaitable[int]]) -> int:
    from venom.daemon.bus.natsbus import NatsBus, client_options

    bus = await NatsBus.connect(
        url,
        name="venom-cli",
        connect_timeout=2.0,
        initial_attempts=1,
        options=client_options(config.nats),
    )
    try:
        return await fn(bus)
    finally:
        await bus.close()


def cmd_run(args: argparse.Namespace) -> int:
    from venom.daemon.service.preflight import check_start
    from venom.daemon.service.run import run_daemon

    overrides: dict[str, Any] = {}
    if args.nats:
        overrides["nats.url"] = args.nats
    if args.period is not None:
        overrides["beat.period"] = args.period
    if args.seed is not None:
        overrides["beat.seed"] = args.seed
    if args.beats is not None:
        overrides["beat.beats"] = args.beats
    if args.scenario:
        overrides["run.scenario"] = args.scenario
    config = _load(args, overrides)
    state_dir = _state_dir(args, config)
    # Bad input stops here, before a server or a worker starts (and fails again forever).
    check_start(config)
    live = False if args.no_live else None
    # SIGHUP reads the same file, environment and flags again.
    _run_async(run_daemon, config, state_dir, live=live, reload=lambda: _load(args, overrides))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from venom.daemon.cli.query import fetch_status

    config = _load(args)
    subjects = Subjects(config.nats.prefix)

    async def go(bus: Any) -> int:
        status = await fetch_status(bus, subjects, args.timeout, arbiter=args.arbiter)
        print(json.dumps(status, indent=2))
        return 0

    return int(_run_async(_with_bus, _nats_url(args, config), config, go))


def cmd_tail(args: argparse.Namespace) -> int:
    from venom.daemon.cli.query import tail

    config = _load(args)
    subjects = Subjects(config.nats.prefix)
    subject = args.subject or subjects.decision

    async def go(bus: Any) -> int:
        await tail(bus, subject, subjects, as_json=args.json, count=args.count)
        return 0

    return int(_run_async(_with_bus, _nats_url(args, config), config, go))


def cmd_plugins(args: argparse.Namespace) -> int:
    from venom.daemon.cli.query import list_plugins, print_table

    config = _load(args)
    subjects = Subjects(config.nats.prefix)

    async def go(bus: Any) -> int:
        rows = await list_plugins(bus, subjects, args.timeout)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print_table(rows, empty="no plugins answered discovery")
        return 0

    return int(_run_async(_with_bus, _nats_url(args, config), config, go))


def cmd_plugin(args: argparse.Namespace) -> int:
    from venom.plugins.registry import available

    if args.plugin_command == "new":
        from venom.daemon.cli.scaffold import scaffold_plugin

        written = scaffold_plugin(args.name, directory=args.dir, role=args.role, force=args.force)
        for path in written:
            print(path)
        return 0
    if args.plugin_command == "list":
        found = available()
        if args.json:
            print(json.dumps(found, indent=2, sort_keys=True))
        else:
            for name, target in sorted(found.items()):
                print(f"{name:<24} {target}")
        return 0
    if args.watch_parent:
        # A worker of `venom run`: from its first moment it goes when the daemon
        # goes (kill -9 included), not only once its plugins are up and watching.
        from venom.daemon.bus.parentdeath import die_with_parent

        die_with_parent(args.watch_parent)
    from venom.daemon.service.preflight import check_plugins
    from venom.daemon.service.worker import run_plugins

    config = _load(args)
    check_plugins(config, list(args.names))
    url = _nats_url(args, config)
    config = _embedded_login(args, config, list(args.names))
    state_dir = _state_dir(args, config)
    _run_async(run_plugins, config, list(args.names), url, state_dir, parent=args.watch_parent)
    return 0


def _show(args: argparse.Namespace, figures: Any, text: Callable[[Any], str]) -> int:
    """Print bench figures as JSON (``--json``) or as ``text`` makes them."""
    print(json.dumps(figures, indent=2) if args.json else text(figures))
    return 0


def _bench_ledger(args: argparse.Namespace) -> int:
    from venom.daemon.bench.ledger import format_ledger_results, run_ledger_bench

    figures = run_ledger_bench(args.entries, args.group_ms, args.proof_leaves)
    return _show(args, figures, format_ledger_results)


def _bench_config(args: argparse.Namespace) -> Any:
    """The config a plugins/daemon/scenario bench runs, checked as ``venom run`` checks it."""
    from venom.daemon.service.preflight import check_start

    overrides: dict[str, Any] = {}
    if args.period is not None:
        overrides["beat.period"] = args.period
    if args.what == "scenario":
        overrides["beat.seed"] = 0 if args.seed is None else args.seed
        overrides["run.scenario"] = args.scenario
    config = _load(args, overrides)
    check_start(config)
    return config


def _bench_scenario(args: argparse.Namespace) -> int:
    from venom.daemon.bench.scenario import bench_scenario, format_scenario_results

    config = _bench_config(args)
    result = _run_async(bench_scenario, config, args.beats or 2300, args.scenario)
    return _show(args, result, format_scenario_results)


def _bench_plugins(args: argparse.Namespace) -> int:
    from venom.daemon.bench import plugins as pluginbench

    rows = _run_async(pluginbench.bench_plugins, _bench_config(args), args.beats or 2000)
    return _show(args, rows, pluginbench.format_plugin_results)


def _bench_daemon(args: argparse.Namespace) -> int:
    from venom.daemon.bench import plugins as pluginbench

    figures = _run_async(pluginbench.bench_daemon, _bench_config(args), args.beats or 10000)
    return _show(args, figures, pluginbench.format_daemon_results)


def _bench_startup(args: argparse.Namespace) -> int:
    from venom.daemon.bench.start import bench_startup, format_startup_results

    runs = 5 if args.rounds is None else args.rounds
    if runs < 1:
        raise ConfigError("--rounds must be >= 1")
    figures = bench_startup(_load(args), args.config, runs, venom=args.venom)
    return _show(args, figures, format_startup_results)


def _bench_loop(args: argparse.Namespace) -> int:
    from venom.daemon.bench.loop import format_results, run_bench

    try:
        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError as exc:
        raise ConfigError(f"--sizes must be comma-separated integers: {exc}") from exc
    if not sizes or any(n < 1 for n in sizes):
        raise ConfigError("--sizes needs at least one positive integer")
    rounds = 2 if args.rounds is None else args.rounds
    results = _run_async(run_bench, sizes, args.duration, rounds, args.nats)
    return _show(args, results, format_results)


#: ``venom bench WHAT``; anything else (no WHAT) is the loop bench.
BENCHES: dict[str, Callable[[argparse.Namespace], int]] = {
    "ledger": _bench_ledger,
    "plugins": _bench_plugins,
    "daemon": _bench_daemon,
    "scenario": _bench_scenario,
    "startup": _bench_startup,
}


def cmd_bench(args: argparse.Namespace) -> int:
    return BENCHES.get(args.what, _bench_loop)(args)


def cmd_ledger(args: argparse.Namespace) -> int:
    from venom.daemon.cli.ledger import run_ledger_command

    config = _load(args)
    return run_ledger_command(args, _state_dir(args, config))


def cmd_schema(args: argparse.Namespace) -> int:
    written = export_schemas(args.dir)
    for path in written:
        print(path)
    return 0


def _run_async(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on anyio's asyncio backend, with uvloop when installed."""
    options: dict[str, Any] = {}
    try:
        import uvloop  # noqa: F401

        options["use_uvloop"] = True
    except ImportError:
        pass

    async def main() -> Any:
        return await fn(*args, **kwargs)

    try:
        return anyio.run(main, backend="asyncio", backend_options=options)
    except BaseExceptionGroup as group:
        # A task group wraps what went wrong: report a venom error as the one line it is.
        cause = _first_of(group, VenomError) or _first_of(group, OSError)
        if cause is None:
            raise
        raise cause from None


def _first_of(group: BaseExceptionGroup[Any], kind: type[BaseException]) -> BaseException | None:
    """The first ``kind`` exception in ``group``, however deeply nested."""
    found: BaseException | None = group.split(kind)[0]
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "status": cmd_status,
    "tail": cmd_tail,
    "plugins": cmd_plugins,
    "plugin": cmd_plugin,
    "bench": cmd_bench,
    "ledger": cmd_ledger,
    "schema": cmd_schema,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``venom`` console command."""
    from venom.daemon.observe.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    # Daemons log what they do; client commands print their answer and errors only.
    quiet = args.command not in ("run", "plugin") or getattr(args, "plugin_command", "") == "list"
    default = "error" if quiet else "info"
    setup_logging(getattr(args, "log_level", None) or os.environ.get("VENOM_LOG_LEVEL", default))
    try:
        return COMMANDS[args.command](args)
    except VenomError as exc:
        print(f"venom: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"venom: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, not bad input: still one line, and a distinct code
        log.debug("internal error", exc_info=exc)
        print(f"venom: internal error: {_one_line(exc)} (please report)", file=sys.stderr)
        return INTERNAL_ERROR


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` (of the first one inside a group) on one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
