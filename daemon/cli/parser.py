"""The ``venom`` argument parser (SPEC 10): every command, flag and help text.

:mod:`venom.daemon.cli.main` runs what it parses.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from venom.daemon.config.load import LOG_LEVELS
from venom.daemon.config.version import VERSION
from venom.schemas import SCHEMA_VERSION


def positive(text: str) -> float:
    """A finite number > 0 (seconds, milliseconds): an argparse ``type``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def log_level(text: str) -> str:
    """One of :data:`LOG_LEVELS`, any case: an argparse ``type``."""
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(LOG_LEVELS)}")
    return text.lower()


def _common_nats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="F", help="config file (default ./venom.toml if present)")
    p.add_argument(
        "--nats",
        metavar="URL",
        help="NATS server URL (default: nats.url, "
        "VENOM_NATS_URL, or the running embedded server of --state-dir)",
    )
    p.add_argument("--state-dir", metavar="D", help="state directory (default ./.venom)")


def _common() -> argparse.ArgumentParser:
    """Options every command takes, after the command name too."""
    p = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given after the command it must not reset one given before it.
    p.add_argument(
        "--log-level",
        type=log_level,
        default=argparse.SUPPRESS,
        help="debug, info, warning, error (default info)",
    )
    return p


# The subparsers action argparse returns from add_subparsers: a private type.
Subparsers = Any


def build_parser() -> argparse.ArgumentParser:
    """The ``venom`` parser: the global options and one subcommand per command."""
    parser = argparse.ArgumentParser(
        prog="venom", description="Pulse-driven orchestration daemon on NATS."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"venom {VERSION} (schema {SCHEMA_VERSION})",
        help="print the version and exit",
    )
    parser.add_argument(
        "--log-level", type=log_level, default=None, help="debug, info, warning, error"
    )
    common = _common()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_run(sub, common)
    _add_status(sub, common)
    _add_tail(sub, common)
    _add_plugins(sub, common)
    _add_plugin(sub, common)
    _add_bench(sub, common)
    _add_ledger(sub, common)
    _add_schema(sub, common)
    return parser


def _add_run(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser(
        "run", parents=[common], help="run the arbiter (and the configured plugins)"
    )
    _common_nats(run)
    run.add_argument("--beats", type=int, metavar="N", help="run N beats, then exit")
    run.add_argument(
        "--period", type=float, metavar="S", help="fixed beat period in seconds (0 = back-to-back)"
    )
    run.add_argument("--seed", type=int, metavar="N", help="run seed")
    run.add_argument("--scenario", metavar="NAME|PATH", help="plant disturbance scenario")
    run.add_argument("--no-live", action="store_true", help="no live status line")


def _add_status(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    status = sub.add_parser(
        "status", parents=[common], help="ask the running arbiter for its status"
    )
    _common_nats(status)
    status.add_argument("--json", action="store_true", help="(default) JSON output")
    status.add_argument("--timeout", type=positive, default=2.0, metavar="S")
    status.add_argument(
        "--arbiter",
        metavar="EPOCH",
        default="",
        help="ask this arbiter (a standby too; its epoch from venom status) instead of the leader",
    )


def _add_tail(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    tail = sub.add_parser("tail", parents=[common], help="print messages on a subject live")
    _common_nats(tail)
    tail.add_argument("subject", nargs="?", help="subject (default <prefix>.decision)")
    tail.add_argument("--json", action="store_true", help="one JSON object per message")
    tail.add_argument(
        "--count", type=at_least(0), default=0, metavar="N", help="stop after N (0: never)"
    )


def _add_plugins(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    plugins = sub.add_parser(
        "plugins", parents=[common], help="list the plugins discovery sees on the bus"
    )
    _common_nats(plugins)
    plugins.add_argument("--json", action="store_true")
    plugins.add_argument("--timeout", type=positive, default=0.5, metavar="S")


def _add_plugin(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    plugin = sub.add_parser("plugin", parents=[common], help="run or list plugins")
    psub = plugin.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    _add_plugin_run(psub, common)
    plist = psub.add_parser("list", parents=[common], help="installed plugins (entry points)")
    plist.add_argument("--json", action="store_true")
    _add_plugin_new(psub, common)


def _add_plugin_run(psub: Subparsers, common: argparse.ArgumentParser) -> None:
    prun = psub.add_parser("run", parents=[common], help="run plugins as their own process")
    prun.add_argument("names", nargs="+", metavar="NAME|module:Class")
    # Set by `venom run` for its plugin processes: stop when that process is gone.
    prun.add_argument("--watch-parent", type=int, default=0, help=argparse.SUPPRESS)
    _common_nats(prun)


def _add_plugin_new(psub: Subparsers, common: argparse.ArgumentParser) -> None:
    pnew = psub.add_parser("new", parents=[common], help="create a plugin package to start from")
    pnew.add_argument("name", metavar="NAME", help="plugin name: lowercase letters, digits, dashes")
    pnew.add_argument(
        "--dir", type=Path, default=Path("."), metavar="D", help="write D/venom-NAME (default .)"
    )
    pnew.add_argument(
        "--role",
        choices=["guard", "estimator", "core", "model", "sensor"],
        default="guard",
        help="kind of plugin (default guard)",
    )
    pnew.add_argument("--force", action="store_true", help="overwrite an existing package")


def _add_bench(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    bench = sub.add_parser(
        "bench", parents=[common], help="measure the beat loop against raw nats-py"
    )
    bench.add_argument(
        "what",
        nargs="?",
        choices=["loop", "ledger", "plugins", "daemon", "startup", "scenario"],
        default="loop",
        help="loop: arbiter vs raw nats-py (default); ledger: the Merkle log; "
        "plugins: handler time of each configured plugin; daemon: the configured "
        "set as `venom run` runs it, missed ticks and beat times; startup: seconds from "
        "`venom run` to its first beat and to every plugin answering; scenario: the default "
        "set on a scenario as `venom run` runs it, judged (detection, calm, temperature, "
        "model AUC, missing replies)",
    )
    _add_bench_run_options(bench)
    _add_bench_ledger_options(bench)
    _add_bench_loop_startup_options(bench)


def _add_bench_run_options(bench: argparse.ArgumentParser) -> None:
    """The options of the benches that run plugins or the daemon: plugins, daemon, scenario."""
    bench.add_argument(
        "--beats",
        type=at_least(0),
        default=0,
        help="plugins: pulses (2000); daemon: beats (10000); scenario: beats (2300)",
    )
    bench.add_argument(
        "--config", metavar="FILE", help="plugins/daemon/scenario: the config to measure"
    )
    bench.add_argument(
        "--scenario", default="default", metavar="NAME", help="scenario: which one (default)"
    )
    bench.add_argument("--seed", type=at_least(0), default=None, help="scenario: seed (0)")
    bench.add_argument(
        "--period",
        type=float,
        default=None,
        metavar="S",
        help="daemon/scenario: fixed period in seconds (0: back-to-back; default T_Λ)",
    )


def _add_bench_ledger_options(bench: argparse.ArgumentParser) -> None:
    bench.add_argument(
        "--entries", type=at_least(1), default=20000, help="ledger: records to append"
    )
    bench.add_argument("--group-ms", type=positive, default=20.0, help="ledger: fsync interval")
    bench.add_argument(
        "--proof-leaves",
        type=at_least(1),
        default=1_000_000,
        help="ledger: tree size for the proof timing",
    )


def _add_bench_loop_startup_options(bench: argparse.ArgumentParser) -> None:
    """The loop and startup benches' options, and --nats and --json, which all take."""
    bench.add_argument("--sizes", default="4,16,64", help="plugin counts, comma-separated")
    bench.add_argument(
        "--duration", type=positive, default=3.0, metavar="S", help="seconds per measurement"
    )
    bench.add_argument(
        "--rounds",
        type=at_least(1),
        default=None,
        help="loop: alternating rounds per size (2); startup: runs (5)",
    )
    bench.add_argument("--nats", metavar="URL", help="use this server instead of a private one")
    bench.add_argument(
        "--venom", metavar="PATH", default="", help="startup: measure this venom command instead"
    )
    bench.add_argument("--json", action="store_true")


def _add_ledger(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    from venom.daemon.cli.ledger import add_ledger_parser

    add_ledger_parser(sub, common)


def _add_schema(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    schema = sub.add_parser("schema", parents=[common], help="message schemas")
    ssub = schema.add_subparsers(dest="schema_command", metavar="ACTION", required=True)
    sexp = ssub.add_parser(
        "export", parents=[common], help="write a JSON Schema per message into DIR"
    )
    sexp.add_argument("dir", type=Path, metavar="DIR")
