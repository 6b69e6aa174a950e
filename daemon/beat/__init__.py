"""The beat loop (SPEC 2), one module per step in data-path order.

scheduler (the tick) → period (T_Λ, the deadline) → pulse (inputs → Pulse)
→ gather (replies until the deadline) with discovery (who is live) →
aggregate → decision (SPEC 2.3) → pid and genome (SPEC 2.4) → stats and
snapshot (what readers see) → arbiter (one beat) and loop (the turns:
pause, hold, stand by) with leadership (HA) → control and view (what it
shows outside). Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from venom.daemon.lazy import lazy_face

if TYPE_CHECKING:
    from venom.daemon.beat.arbiter import Arbiter, RecordSink
    from venom.daemon.beat.breakerlog import BreakerLog
    from venom.daemon.beat.control import ArbiterCommands, Control
    from venom.daemon.beat.decision import DecisionInputs, decide
    from venom.daemon.beat.discovery import Discovery, LivePlugin
    from venom.daemon.beat.gather import Gather, PluginHealth
    from venom.daemon.beat.genome import Genome
    from venom.daemon.beat.leadership import Leadership
    from venom.daemon.beat.loadwatch import LoadWatch
    from venom.daemon.beat.loop import BeatLoop
    from venom.daemon.beat.period import beat_period, gather_deadline, t_lambda
    from venom.daemon.beat.pid import GenomicPid
    from venom.daemon.beat.pulse import InputState
    from venom.daemon.beat.scheduler import Scheduler, Tick
    from venom.daemon.beat.snapshot import ArbiterSnapshot
    from venom.daemon.beat.stats import BeatStats
    from venom.daemon.beat.view import arbiter_gauges, arbiter_service

#: Each public name and the module that defines it.
_WHERE = {
    "Arbiter": "venom.daemon.beat.arbiter",
    "RecordSink": "venom.daemon.beat.arbiter",
    "BreakerLog": "venom.daemon.beat.breakerlog",
    "ArbiterCommands": "venom.daemon.beat.control",
    "Control": "venom.daemon.beat.control",
    "DecisionInputs": "venom.daemon.beat.decision",
    "decide": "venom.daemon.beat.decision",
    "Discovery": "venom.daemon.beat.discovery",
    "LivePlugin": "venom.daemon.beat.discovery",
    "Gather": "venom.daemon.beat.gather",
    "PluginHealth": "venom.daemon.beat.gather",
    "Genome": "venom.daemon.beat.genome",
    "Leadership": "venom.daemon.beat.leadership",
    "LoadWatch": "venom.daemon.beat.loadwatch",
    "BeatLoop": "venom.daemon.beat.loop",
    "beat_period": "venom.daemon.beat.period",
    "gather_deadline": "venom.daemon.beat.period",
    "t_lambda": "venom.daemon.beat.period",
    "GenomicPid": "venom.daemon.beat.pid",
    "InputState": "venom.daemon.beat.pulse",
    "Scheduler": "venom.daemon.beat.scheduler",
    "Tick": "venom.daemon.beat.scheduler",
    "ArbiterSnapshot": "venom.daemon.beat.snapshot",
    "BeatStats": "venom.daemon.beat.stats",
    "arbiter_gauges": "venom.daemon.beat.view",
    "arbiter_service": "venom.daemon.beat.view",
}

__all__ = [
    "Arbiter",
    "ArbiterCommands",
    "ArbiterSnapshot",
    "BeatLoop",
    "BeatStats",
    "BreakerLog",
    "Control",
    "DecisionInputs",
    "Discovery",
    "Gather",
    "Genome",
    "GenomicPid",
    "InputState",
    "Leadership",
    "LivePlugin",
    "LoadWatch",
    "PluginHealth",
    "RecordSink",
    "Scheduler",
    "Tick",
    "arbiter_gauges",
    "arbiter_service",
    "beat_period",
    "decide",
    "gather_deadline",
    "t_lambda",
]

__getattr__, __dir__ = lazy_face(__name__, _WHERE)
