"""The configuration tree (SPEC 9): frozen Structs that forbid unknown keys.

Defaults are the numbers in SPEC.md. Loading (TOML file, ``VENOM_*``
environment overrides, CLI flags) lives in :mod:`venom.daemon.config.load`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
from msgspec import Meta

Positive = Annotated[float, Meta(gt=0)]
NonNegative = Annotated[float, Meta(ge=0)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
PositiveInt = Annotated[int, Meta(ge=1)]

#: The full default set: the plant, the estimators, the guards, the model, the
#: four cores and the ledger (SPEC 3), so ``venom run`` closes the loop.
DEFAULT_PLUGINS = [
    "optical-plant",
    "kalman",
    "adaptive-kalman",
    "stability",
    "flow",
    "correlation",
    "coherence",
    "cusum",
    "gate",
    "dissonance",
    "thermal",
    "ber",
    "entropy-model",
    "regen-core",
    "balance-core",
    "entropy-core",
    "optimize-core",
    "ledger",
]


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class NatsConfig(_Section, frozen=True, kw_only=True):
    """``[nats]``: where the bus is. An empty ``url`` starts the embedded server."""

    url: str = ""
    name: str = "venom"
    prefix: str = "venom"
    connect_timeout: Positive = 5.0
    user: str = ""
    password: str = ""
    token: str = ""
    credentials: str = ""
    #: CA bundle that signs the server's certificate (empty: the system's CAs).
    tls_ca: str = ""
    #: Client certificate and key, for servers that verify clients.
    tls_cert: str = ""
    tls_key: str = ""
    #: Replicas of the beat stream when the arbiter creates it (3 on a cluster).
    stream_replicas: Annotated[int, Meta(ge=1, le=5)] = 1


class EmbeddedConfig(_Section, frozen=True, kw_only=True):
    """``[embedded]``: the private nats-server used when no URL is configured."""

    server_path: str = ""
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 0
    jetstream: bool = True
    start_timeout: Positive = 10.0
    #: Users and passwords for venom's processes (made at first start, in the state
    #: dir); a client without them is the read-only inspector. False: open to all.
    credentials: bool = True


class BeatConfig(_Section, frozen=True, kw_only=True):
    """``[beat]``: period, deadline, breaker (SPEC 2.1-2.2).

    ``period`` unset → T_Λ(k, P); ``period = 0`` → back-to-back beats.
    """

    period: NonNegative | None = None
    t1: Positive = 0.001
    u: Annotated[float, Meta(gt=1)] = math.e**4
    k: int = 4
    p: int = 5
    min_period: Positive = 1e-6
    deadline_fraction: Annotated[float, Meta(gt=0, le=1)] = 0.8
    deadline: Positive | None = None
    back_to_back_deadline: Positive = 1.0
    breaker_after: PositiveInt = 5
    seed: Annotated[int, Meta(ge=0)] = 0
    beats: Annotated[int, Meta(ge=0)] = 0
    max_reply_bytes: PositiveInt = 256 * 1024
    discovery_interval: Positive = 1.0
    discovery_timeout: Positive = 0.25


class Thresholds(_Section, frozen=True, kw_only=True):
    """``[thresholds]``: decision rules (SPEC 2.3)."""

    threat_quarantine: Fraction = 0.85
    threat_alert: Fraction = 0.60
    stability: Fraction = 0.25
    repair: Fraction = 0.10
    opt_gain: Fraction = 0.10
    ml_weight: Fraction = 0.12


class PidConfig(_Section, frozen=True, kw_only=True):
    """``[pid]``: the genomic PID (SPEC 2.4)."""

    kp: float = 0.6
    ki: float = 0.1
    kd: float = 0.05
    t_threshold: Positive = 0.02
    integral_limit: Positive = 1.0
    reset_epsilon: NonNegative = 1e-4
    output_limit: Positive = 0.05
    window: PositiveInt = 10


class GenomeConfig(_Section, frozen=True, kw_only=True):
    """``[genome]``: initial weights and the floor (SPEC 2.4)."""

    R: Annotated[float, Meta(ge=0)] = 0.25
    B: Annotated[float, Meta(ge=0)] = 0.25
    E: Annotated[float, Meta(ge=0)] = 0.25
    O: Annotated[float, Meta(ge=0)] = 0.25  # noqa: E741 - the SPEC's name
    floor: Annotated[float, Meta(ge=0, lt=0.25)] = 0.01
    threat_trigger: Fraction = 0.5
    e_gain: NonNegative = 0.15
    e_decay_beats: Positive = 50.0
    o_ref: Positive = 0.3


class PluginsConfig(_Section, frozen=True, kw_only=True):
    """``[plugins]``: which plugins ``venom run`` hosts, and which guards are required.

    ``settings`` holds one table per plugin: ``[plugins.settings.cusum]``.
    """

    run: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_PLUGINS))
    #: Child processes that host the plugins (each answers a pulse with one
    #: ReplyBatch); 0 hosts them all in the daemon's own process.
    processes: Annotated[int, Meta(ge=0, le=64)] = 1
    #: Plugins (as named in ``run``) that get a process of their own instead
    #: of joining one of the ``processes`` (ignored with ``processes = 0``).
    alone: list[str] = []
    required_guards: list[str] = []
    settings: dict[str, dict[str, Any]] = {}


class RunConfig(_Section, frozen=True, kw_only=True):
    """``[run]``: process-level settings."""

    state_dir: str = ""
    scenario: str = ""
    live: bool = True
    live_interval: Positive = 1.0
    log_level: str = "info"
    #: MiB of <state>/beats.spill, made at full size at start: records the beat
    #: stream has not acked wait there (a full disk, no server); 0: none.
    spill_mib: Annotated[int, Meta(ge=0, le=4096)] = 32


class HealthConfig(_Section, frozen=True, kw_only=True):
    """``[health]``: the liveness/readiness endpoint for container health checks.

    ``GET /livez``: 200 while the beat loop (or the plugin host) turns;
    ``GET /readyz``: 200 while connected and beating (plugins: hosting);
    ``GET /status``: the same as JSON. Loopback by default; a pod needs
    ``host = "0.0.0.0"`` for the kubelet's probes.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    #: 0 picks a free port (logged at start).
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    #: Seconds without a turn of the loop before /livez fails.
    stall_after: Positive = 10.0


class TelemetryConfig(_Section, frozen=True, kw_only=True):
    """``[telemetry]``: traces and metrics (SPEC 7).

    Traces go to ``otlp_endpoint`` (OTLP over HTTP, e.g.
    ``http://127.0.0.1:4318``) when set, to stderr with ``console = true``,
    nowhere otherwise (the beat's trace and span ids are still made and
    stored in the ledger). Metrics go to the OTLP endpoint and/or the
    Prometheus endpoint.
    """

    otlp_endpoint: str = ""
    console: bool = False
    #: Share of beats traced (the root decides; plugins follow the header's flag).
    #: A traced beat costs about 1 ms of CPU in Python's SDK (20 spans, made and
    #: encoded): 1 % is not measurable at T_Λ, 10 % is (README, Telemetry).
    sample_ratio: Fraction = 0.01
    service_name: str = "venom"
    #: Seconds between OTLP metric exports.
    export_interval: Positive = 10.0
    #: The arbiter's Prometheus endpoint: ``http://<host>:<port>/metrics``.
    prometheus: bool = False
    prometheus_host: str = "127.0.0.1"
    #: 0 picks a free port (logged at start).
    prometheus_port: Annotated[int, Meta(ge=0, le=65535)] = 9464


class HaConfig(_Section, frozen=True, kw_only=True):
    """``[ha]``: arbiters that stand by (SPEC 2.6).

    With ``enabled``, an arbiter starts as a standby: it follows the beat
    stream and takes over when no record (and no heartbeat of a paused or
    holding leader) has come for ``takeover_after`` seconds (unset: 5 · the
    period in force, T_Λ back to back). Leadership is the right to append
    to the beat stream, and the stream's order check enforces it.
    """

    enabled: bool = False
    takeover_after: Positive | None = None
    #: Seconds the leader entry in the ``<PREFIX>_HA`` KV bucket lives
    #: unless refreshed (it is refreshed every third of it; it decides nothing).
    announce_ttl: Annotated[float, Meta(ge=1.0)] = 3.0


class VenomConfig(_Section, frozen=True, kw_only=True):
    """The whole ``venom.toml``."""

    nats: NatsConfig = NatsConfig()
    embedded: EmbeddedConfig = EmbeddedConfig()
    beat: BeatConfig = BeatConfig()
    thresholds: Thresholds = Thresholds()
    pid: PidConfig = PidConfig()
    genome: GenomeConfig = GenomeConfig()
    plugins: PluginsConfig = PluginsConfig()
    run: RunConfig = RunConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    health: HealthConfig = HealthConfig()
    ha: HaConfig = HaConfig()
