"""``venom bench``: loop (the arbiter against raw nats-py), plugins and
daemon (the default set, in memory and as processes), ledger, start (time
to the first beat), scenario (the closed-loop targets), proccpu (CPU per
process from /proc). Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.bench.ledger import run_ledger_bench
    from venom.daemon.bench.loop import run_bench
    from venom.daemon.bench.plugins import bench_daemon, bench_plugins
    from venom.daemon.bench.scenario import bench_scenario
    from venom.daemon.bench.start import bench_startup

#: Each public name and the module that defines it.
_WHERE = {
    "run_ledger_bench": "venom.daemon.bench.ledger",
    "run_bench": "venom.daemon.bench.loop",
    "bench_daemon": "venom.daemon.bench.plugins",
    "bench_plugins": "venom.daemon.bench.plugins",
    "bench_scenario": "venom.daemon.bench.scenario",
    "bench_startup": "venom.daemon.bench.start",
}

__all__ = [
    "bench_daemon",
    "bench_plugins",
    "bench_scenario",
    "bench_startup",
    "run_bench",
    "run_ledger_bench",
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
