"""What flows into the pulse from outside the beat: telemetry and the mesh.

Sensors outside the beat publish :class:`Telemetry` on
``<prefix>.telemetry.<source>`` at their own pace; each pulse carries the
latest value of each as features ``<source>.<key>`` (SPEC 3). A sensor that
answers the pulse (the plant) is folded in the same way, one beat later.
Anomalies injected on ``<prefix>.mesh.anomaly`` ride in the pulse context
for their ``beats``; ``<prefix>.mesh.ml_weight`` changes the model's share.
Malformed input is counted, logged once and dropped.
"""

from __future__ import annotations

import logging
import math

from venom.daemon.bus.base import Bus, BusMessage, Subscription
from venom.daemon.observe.problems import ProblemLog
from venom.schemas import Anomaly, Codec, GatherReport, MlWeight, Subjects, Telemetry

log = logging.getLogger("venom.inputs")


class InputState:
    """Latest telemetry, active mesh anomalies and the ml_weight override."""

    def __init__(self, subjects: Subjects, codec: Codec) -> None:
        self.subjects = subjects
        self.codec = codec
        self.problems = ProblemLog(log)
        self.ml_weight: float | None = None
        self._telemetry: dict[str, dict[str, float]] = {}
        self._own: dict[str, float] = {"arbiter.missing": 0.0, "arbiter.failed": 0.0}
        self._features: dict[str, float] = dict(self._own)
        self._dirty = False
        self._anomalies: list[tuple[Anomaly, int]] = []
        self._subs: list[Subscription] = []
        self._telemetry_decoder = codec.decoder(Telemetry)
        self._anomaly_decoder = codec.decoder(Anomaly)
        self._ml_decoder = codec.decoder(MlWeight)

    async def start(self, bus: Bus) -> None:
        s = self.subjects
        self._subs = [
            await bus.subscribe(s.telemetry_wildcard, self._on_telemetry),
            await bus.subscribe(s.mesh_anomaly, self._on_anomaly),
            await bus.subscribe(s.mesh_ml_weight, self._on_ml_weight),
        ]

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    def features(self) -> dict[str, float]:
        """The features of the next pulse (a fresh dict only when something changed)."""
        if self._dirty:
            merged = dict(self._own)
            for source, values in self._telemetry.items():
                for key, value in values.items():
                    merged[f"{source}.{key}"] = value
            self._features = merged
            self._dirty = False
        return self._features

    def take_telemetry(self, telemetry: Telemetry, source: str = "") -> None:
        """Keep ``telemetry`` as the latest of its source."""
        self._telemetry[source or telemetry.source] = telemetry.values
        self._dirty = True

    def after_beat(self, report: GatherReport, t_obs: float) -> None:
        """Fold the beat's own counts into the next features."""
        missing = float(len(report.missing))
        failed = float(len(report.failed) + len(report.rejected))
        if missing != self._own["arbiter.missing"] or failed != self._own["arbiter.failed"]:
            self._own = {"arbiter.missing": missing, "arbiter.failed": failed}
            self._dirty = True

    def take_anomalies(self) -> list[Anomaly]:
        """Anomalies active for the next pulse; each counts down its beats."""
        if not self._anomalies:
            return []
        active: list[Anomaly] = []
        keep: list[tuple[Anomaly, int]] = []
        for anomaly, left in self._anomalies:
            active.append(anomaly)
            if left > 1:
                keep.append((anomaly, left - 1))
        self._anomalies = keep
        return active

    async def _on_telemetry(self, msg: BusMessage) -> None:
        source = msg.subject.rsplit(".", 1)[-1]
        try:
            telemetry = self.codec.decode(Telemetry, msg.data)
        except Exception as exc:
            self.problems.report("malformed telemetry", source, msg.subject, str(exc))
            return
        self.take_telemetry(telemetry, source)

    async def _on_anomaly(self, msg: BusMessage) -> None:
        try:
            anomaly = self.codec.decode(Anomaly, msg.data)
        except Exception as exc:
            self.problems.report("malformed anomaly", "", msg.subject, str(exc))
            return
        if anomaly.beats < 1 or not math.isfinite(anomaly.magnitude):
            self.problems.report(
                "invalid anomaly", anomaly.source, msg.subject, "beats must be >= 1"
            )
            return
        self._anomalies.append((anomaly, anomaly.beats))

    async def _on_ml_weight(self, msg: BusMessage) -> None:
        try:
            value = self.codec.decode(MlWeight, msg.data).value
        except Exception as exc:
            self.problems.report("malformed ml_weight", "", msg.subject, str(exc))
            return
        if not 0.0 <= value <= 1.0:
            self.problems.report("invalid ml_weight", "", msg.subject, f"{value} not in [0, 1]")
            return
        log.info("ml_weight set to %.3f", value)
        self.ml_weight = value
