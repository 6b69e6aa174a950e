"""The ``venom`` command: main (the console entry point), parser, query
(status, tail, plugins), ledger, scaffold and its templates. Names load on
first use, so ``venom --help`` loads neither the arbiter nor nats-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.cli.ledger import run_ledger_command
    from venom.daemon.cli.parser import build_parser
    from venom.daemon.cli.query import fetch_status, list_plugins, tail
    from venom.daemon.cli.scaffold import scaffold_plugin

#: Each public name and the module that defines it.
_WHERE = {
    "run_ledger_command": "venom.daemon.cli.ledger",
    "build_parser": "venom.daemon.cli.parser",
    "fetch_status": "venom.daemon.cli.query",
    "list_plugins": "venom.daemon.cli.query",
    "tail": "venom.daemon.cli.query",
    "scaffold_plugin": "venom.daemon.cli.scaffold",
}

__all__ = [
    "build_parser",
    "fetch_status",
    "list_plugins",
    "run_ledger_command",
    "scaffold_plugin",
    "tail",
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
