"""Every message venom puts on the bus or in the ledger.

All messages are msgspec Structs, ``frozen=True, kw_only=True``, and carry
``schema`` (the wire version). Schema evolution is append-only: a new field
gets a default, a field's type never changes, and no field is ever removed,
because old ledger entries must decode forever.

Plugin replies form one tagged union (:data:`Reply`, tag field ``type``) so
the arbiter decodes any reply with one decoder and dispatches with ``match``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

SCHEMA_VERSION = 1

Action = Literal["QUARANTINE", "ALERT", "BALANCE", "REPAIR", "OPTIMIZE", "STEADY"]
ACTIONS: tuple[Action, ...] = ("QUARANTINE", "ALERT", "BALANCE", "REPAIR", "OPTIMIZE", "STEADY")
Role = Literal["core", "estimator", "guard", "model", "sensor", "ledger"]
ROLES: tuple[Role, ...] = ("core", "estimator", "guard", "model", "sensor", "ledger")
CoreName = Literal["R", "B", "E", "O"]
Severity = Literal["info", "warning", "critical"]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every wire message."""

    schema: int = SCHEMA_VERSION


class Weights(msgspec.Struct, frozen=True, kw_only=True):
    """Genome weights of the four cores; normalised to sum 1 by the arbiter."""

    R: float = 0.25
    B: float = 0.25
    E: float = 0.25
    O: float = 0.25  # noqa: E741 - the SPEC's name


class Anomaly(Message, frozen=True, kw_only=True, tag="anomaly"):
    """An anomaly injected through the mesh (``venom.mesh.anomaly``)."""

    source: str
    feature: str = ""
    magnitude: float = 1.0
    beats: int = 1


class MlWeight(Message, frozen=True, kw_only=True, tag="ml_weight"):
    """A run-time change of the model's share of the threat (``venom.mesh.ml_weight``)."""

    value: float


class Label(Message, frozen=True, kw_only=True, tag="label"):
    """Ground truth for one beat, published by a simulator (``venom.mesh.label``)."""

    beat: int
    label: int
    kind: str = ""


class PulseContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the arbiter knew at the end of the previous beat."""

    decision: Action = "STEADY"
    threat: float = 0.0
    stability: float = 1.0
    urgency: float = 0.0
    gain: float = 0.0
    estimates: dict[str, float] = {}
    down: list[str] = []
    failing: list[str] = []
    missing: list[str] = []
    anomalies: list[Anomaly] = []
    cooling: str = ""
    ledger_lag: int = 0


class Pulse(Message, frozen=True, kw_only=True):
    """The beat's request, published on ``venom.pulse``.

    ``issued_at`` is Unix time in seconds; ``deadline`` is the Unix time by
    which a reply must arrive; ``t_lambda`` the beat period in force.
    """

    beat: int
    issued_at: float
    deadline: float
    t_lambda: float
    seed: int
    weights: Weights = Weights()
    features: dict[str, float] = {}
    context: PulseContext = PulseContext()


class CoreReply(Message, frozen=True, kw_only=True, tag="core"):
    """A decision core's answer.

    ``score`` in [0, 1] means, by core: R urgency, B stability, E threat,
    O expected gain.
    """

    core: CoreName
    score: float
    details: dict[str, float] = {}
    notes: list[str] = []


class EstimateReply(Message, frozen=True, kw_only=True, tag="estimate"):
    """An estimator's answer: named scalars plus optional vectors."""

    estimator: str
    values: dict[str, float] = {}
    vectors: dict[str, list[float]] = {}
    adapted: bool = False


class GuardVerdict(Message, frozen=True, kw_only=True, tag="guard"):
    """A guard's verdict. ``allow=False`` is a veto; ``blocks`` names actions
    the guard forbids without vetoing the beat (thermal blocks OPTIMIZE)."""

    guard: str
    allow: bool
    severity: Severity = "info"
    reason: str = ""
    metric: float = 0.0
    blocks: list[Action] = []
    recommend: str = ""


class ThreatReply(Message, frozen=True, kw_only=True, tag="threat"):
    """The threat model's score in [0, 1]."""

    model: str
    threat: float
    ml_weight: float = 0.12


class Telemetry(Message, frozen=True, kw_only=True, tag="telemetry"):
    """A sensor's measurement, as a pulse reply or on ``venom.telemetry.<source>``."""

    source: str
    values: dict[str, float] = {}
    state: list[float] = []
    time: float = 0.0


class ErrorReply(Message, frozen=True, kw_only=True, tag="error"):
    """A plugin that could not answer the pulse."""

    code: int = 500
    description: str = ""


Reply = CoreReply | EstimateReply | GuardVerdict | ThreatReply | Telemetry | ErrorReply
Mesh = Anomaly | MlWeight | Label


class ReplyBatch(Message, frozen=True, kw_only=True):
    """A host's replies for one beat (SPEC 2.2): plugin name → its reply.

    A process that hosts several plugins answers the pulse with one batch
    (header ``Venom-Host`` names the host's set) instead of one message per
    plugin; each member is a normal reply, an :class:`ErrorReply` when that
    plugin failed. The arbiter counts every member as if the plugin had
    answered alone. ``beat`` repeats the pulse's beat, ``host`` the set.
    """

    host: str
    beat: int
    replies: dict[str, Reply] = {}


class Decision(Message, frozen=True, kw_only=True):
    """The arbiter's decision for one beat, published on ``venom.decision``."""

    beat: int
    action: Action
    threat: float = 0.0
    stability: float = 1.0
    urgency: float = 0.0
    gain: float = 0.0
    weights: Weights = Weights()
    vetoes: list[str] = []
    missing: list[str] = []
    t_obs: float = 0.0
    reason: str = ""
    blocked: list[Action] = []


class GatherReport(Message, frozen=True, kw_only=True):
    """Who answered beat ``beat`` and how.

    ``replied`` maps plugin → latency (s). ``late`` counts replies for older
    beats that arrived while this beat gathered (they are dropped).
    ``failed`` maps plugin → error text (error replies), ``rejected`` plugin →
    why its reply was refused (malformed). ``closed_by`` is ``all`` when every
    expected reply was in, ``deadline`` otherwise.
    """

    beat: int
    expected: list[str] = []
    replied: dict[str, float] = {}
    late: dict[str, int] = {}
    failed: dict[str, str] = {}
    rejected: dict[str, str] = {}
    missing: list[str] = []
    down: list[str] = []
    closed_by: Literal["all", "deadline", "none"] = "all"
    gather_s: float = 0.0


class PidState(Message, frozen=True, kw_only=True):
    """The genomic PID after one beat."""

    error: float = 0.0
    integral: float = 0.0
    derivative: float = 0.0
    output: float = 0.0
    stable: bool = True


class BeatRecord(Message, frozen=True, kw_only=True):
    """Everything about one beat: what goes into the ledger."""

    beat: int
    pulse: Pulse
    replies: dict[str, Reply] = {}
    report: GatherReport
    decision: Decision
    pid: PidState = PidState()
    trace_id: str = ""
    span_id: str = ""
    #: The epoch of the arbiter that decided it (SPEC 2.6; "" outside ``venom run``).
    epoch: str = ""


class LedgerHead(Message, frozen=True, kw_only=True):
    """The ledger's tree size and root, published on ``venom.ledger.head``."""

    size: int
    root: str
    time: float = 0.0


class PluginStatus(msgspec.Struct, frozen=True, kw_only=True):
    """One live plugin as the arbiter sees it."""

    name: str
    role: str = ""
    version: str = ""
    instances: int = 0
    last_latency_ms: float | None = None
    down: bool = False
    misses: int = 0
    errors: int = 0
    rejected: int = 0
    late: int = 0


class SlowPlugin(msgspec.Struct, frozen=True, kw_only=True):
    """One of the plugins that held the beat back, by its reply latency."""

    name: str
    #: 99th percentile of its reply latency, ms (None: missing in over 1 % of beats).
    p99_ms: float | None = None
    #: ``p99_ms`` as a share of the gather budget (deadline - tick).
    share: float | None = None
    #: Beats it was waited for and did not answer in time, %.
    missing_pct: float = 0.0


class LoadReport(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the beat was kept over the last window, and if not, who held it back."""

    fits: bool = True
    window_s: float = 0.0
    beats: int = 0
    missed_ticks_pct: float = 0.0
    missing_pct: float = 0.0
    budget_ms: float = 0.0
    slowest: list[SlowPlugin] = []
    #: The operator's one line (empty while the beat is kept).
    reason: str = ""


class Status(Message, frozen=True, kw_only=True):
    """The answer to ``venom.ctl.status``."""

    beat: int
    rate: float
    t_lambda: float
    period_mode: str
    paused: bool
    weights: Weights
    pid_error: float
    pid_stable: bool
    missed_ticks: int
    k: int
    p: int
    plugins: list[PluginStatus] = []
    decisions: dict[str, int] = {}
    last_decision: Decision | None = None
    uptime_s: float = 0.0
    connected: bool = True
    load: LoadReport = LoadReport()
    #: HA (SPEC 2.6): ``leader`` or ``standby``; this arbiter's epoch; the leader's
    #: epoch and the first beat it issued as leader (a standby: whom it follows).
    role: str = "leader"
    epoch: str = ""
    leader: str = ""
    leader_since: int = 0
    #: Why beats are held ("" while they are not).
    holding: str = ""
    #: What keeps beat records from being stored ("" while nothing does): the full
    #: disk under the embedded server's store, with its path and free space.
    storage: str = ""


class ControlAck(Message, frozen=True, kw_only=True):
    """The answer to ``venom.ctl.pause``, ``resume`` and ``weights``."""

    ok: bool = True
    paused: bool = False
    weights: Weights = Weights()
