"""From one beat's replies to the decision's inputs (SPEC 2.3, aggregation).

Each reply is sorted by its type: core scores by letter (R urgency, B
stability, E threat, O gain), guard verdicts by plugin name, the model's
threat, estimator values. Everything numeric also goes into the next
pulse's context as ``<plugin>.<key>``; telemetry replies are handed on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from venom.daemon.beat.decision import DecisionInputs
from venom.schemas import (
    Anomaly,
    BeatRecord,
    CoreReply,
    Decision,
    EstimateReply,
    GatherReport,
    GuardVerdict,
    PulseContext,
    Reply,
    Telemetry,
    ThreatReply,
    Weights,
)


def aggregate(
    beat: int,
    replies: Mapping[str, Reply],
    *,
    missing: Sequence[str],
    required_guards: Sequence[str] | frozenset[str],
    weights: Weights,
    t_obs: float,
    ml_weight: float | None = None,
    on_telemetry: Callable[[Telemetry], None] | None = None,
) -> tuple[DecisionInputs, dict[str, float]]:
    """The decision inputs of ``beat`` and the next pulse's context estimates.

    ``ml_weight`` (set at run time on the mesh) overrides the model's own.
    """
    verdicts: dict[str, GuardVerdict] = {}
    context: dict[str, float] = {}
    e_threat, model_threat, stability, urgency, gain, model_weight = _sort_replies(
        replies, verdicts, context, on_telemetry
    )
    inputs = DecisionInputs(
        beat=beat,
        e_threat=e_threat,
        model_threat=model_threat,
        stability=stability,
        urgency=urgency,
        gain=gain,
        verdicts=verdicts,
        required_guards=required_guards,
        missing=missing,
        weights=weights,
        t_obs=t_obs,
        ml_weight=ml_weight if ml_weight is not None else model_weight,
    )
    return inputs, context


_Scores = tuple[float | None, float | None, float | None, float | None, float | None, float | None]


def _sort_replies(
    replies: Mapping[str, Reply],
    verdicts: dict[str, GuardVerdict],
    context: dict[str, float],
    on_telemetry: Callable[[Telemetry], None] | None,
) -> _Scores:
    """Sort each reply by its type: guard verdicts into ``verdicts``, every
    number into ``context``, telemetry to ``on_telemetry``. Returns the
    E threat, the model's threat, stability (B), urgency (R), gain (O) and
    the model's ML weight, None for each that did not come."""
    e_threat = model_threat = stability = urgency = gain = None
    model_weight = None
    for name, reply in replies.items():
        match reply:
            case CoreReply(core=core, score=score, details=details):
                if core == "E":
                    e_threat = score
                elif core == "B":
                    stability = score
                elif core == "R":
                    urgency = score
                else:
                    gain = score
                context[f"{name}.score"] = score
                for key, value in details.items():
                    context[f"{name}.{key}"] = value
            case GuardVerdict():
                verdicts[name] = reply
                context[f"{name}.metric"] = reply.metric
            case ThreatReply(threat=threat):
                model_threat = threat
                model_weight = reply.ml_weight
                context[f"{name}.threat"] = threat
            case EstimateReply(values=values):
                for key, value in values.items():
                    context[f"{name}.{key}"] = value
            case Telemetry():
                if on_telemetry is not None:
                    on_telemetry(reply)
    return e_threat, model_threat, stability, urgency, gain, model_weight


def next_context(
    decision: Decision,
    report: GatherReport,
    replies: Mapping[str, Reply],
    estimates: dict[str, float],
    anomalies: list[Anomaly],
) -> PulseContext:
    """What the next pulse carries from this beat: its decision, the estimates,
    who failed, the anomalies injected since, the cooling a guard advises."""
    cooling = next(
        (r.recommend for r in replies.values() if isinstance(r, GuardVerdict) and r.recommend),
        "",
    )
    return PulseContext(
        decision=decision.action,
        threat=decision.threat,
        stability=decision.stability,
        urgency=decision.urgency,
        gain=decision.gain,
        estimates=estimates,
        down=report.down,
        failing=sorted({*report.failed, *report.rejected, *report.missing}),
        missing=report.missing,
        anomalies=anomalies,
        cooling=cooling,
        ledger_lag=int(estimates.get("ledger.lag", 0)),
    )


def context_after(
    record: BeatRecord,
    *,
    required_guards: Sequence[str] | frozenset[str],
    anomalies: list[Anomaly],
    on_telemetry: Callable[[Telemetry], None] | None = None,
) -> PulseContext:
    """The context of the pulse after ``record``, from the record alone (a resume, SPEC 2.6).

    The estimates depend on the replies only, so they come out as the
    arbiter that wrote the record had them; ``anomalies`` are the ones the
    resuming arbiter heard itself.
    """
    _, estimates = aggregate(
        record.beat,
        record.replies,
        missing=record.report.missing,
        required_guards=required_guards,
        weights=record.pulse.weights,
        t_obs=0.0,
        on_telemetry=on_telemetry,
    )
    return next_context(record.decision, record.report, record.replies, estimates, anomalies)
