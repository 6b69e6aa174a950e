"""Subject names and header keys (SPEC 5.1). The prefix is configurable."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

HDR_TRACEPARENT: Final = "traceparent"
HDR_TRACESTATE: Final = "tracestate"
HDR_BEAT: Final = "Venom-Beat"
HDR_PLUGIN: Final = "Venom-Plugin"
#: On a ReplyBatch instead of ``Venom-Plugin``: the host's plugin set (SPEC 2.2).
HDR_HOST: Final = "Venom-Host"
HDR_SERVICE_ERROR: Final = "Nats-Service-Error"
HDR_SERVICE_ERROR_CODE: Final = "Nats-Service-Error-Code"


class Subjects:
    """All subjects venom uses, under one prefix (default ``venom``).

    >>> Subjects().pulse
    'venom.pulse'
    >>> Subjects("lab").telemetry("plant")
    'lab.telemetry.plant'
    """

    __slots__ = (
        "beat",
        "ctl_pause",
        "ctl_resume",
        "ctl_status",
        "ctl_weights",
        "ctl_wildcard",
        "decision",
        "ha_leader",
        "ledger_head",
        "mesh_anomaly",
        "mesh_label",
        "mesh_ml_weight",
        "mesh_wildcard",
        "prefix",
        "pulse",
        "telemetry_wildcard",
    )

    def __init__(self, prefix: str = "venom") -> None:
        if not prefix or any(c in prefix for c in " *>\t\r\n") or prefix.startswith("."):
            raise ValueError(f"invalid subject prefix {prefix!r}")
        self.prefix = prefix
        self.pulse = f"{prefix}.pulse"
        self.decision = f"{prefix}.decision"
        self.beat = f"{prefix}.beat"
        self.telemetry_wildcard = f"{prefix}.telemetry.*"
        self.mesh_anomaly = f"{prefix}.mesh.anomaly"
        self.mesh_ml_weight = f"{prefix}.mesh.ml_weight"
        self.mesh_label = f"{prefix}.mesh.label"
        self.mesh_wildcard = f"{prefix}.mesh.*"
        self.ledger_head = f"{prefix}.ledger.head"
        self.ctl_status = f"{prefix}.ctl.status"
        self.ctl_pause = f"{prefix}.ctl.pause"
        self.ctl_resume = f"{prefix}.ctl.resume"
        self.ctl_weights = f"{prefix}.ctl.weights"
        self.ctl_wildcard = f"{prefix}.ctl.*"
        #: A paused or holding HA leader's heartbeat (its records are one otherwise).
        self.ha_leader = f"{prefix}.ha.leader"

    def ctl_of(self, epoch: str) -> str:
        """The control subjects of one arbiter, leader or standby: ``<prefix>.ctl.<epoch>.*``."""
        return f"{self.prefix}.ctl.{epoch}.*"

    def telemetry(self, source: str) -> str:
        """Subject a sensor named ``source`` publishes on."""
        return f"{self.prefix}.telemetry.{source}"

    def queue_group(self, plugin: str) -> str:
        """Queue group of a plugin: replicas share one (SPEC 2.2)."""
        return f"{self.prefix}.{plugin}"

    def host_queue_group(self, host: str) -> str:
        """Queue group of a host (``host`` from :func:`host_set`): replicas share one."""
        return f"{self.prefix}.host.{host}"


def host_set(plugins: Iterable[str]) -> str:
    """Short name of a set of plugins, the same for any order (SPEC 2.2).

    >>> host_set(["kalman", "flow"]) == host_set(["flow", "kalman"])
    True
    >>> len(host_set(["flow"]))
    10
    """
    joined = ",".join(sorted(set(plugins)))
    return hashlib.sha256(joined.encode()).hexdigest()[:10]
