"""Aggregation and the decision rules (SPEC 2.3).

threat = (1 − w)·E-core threat + w·model threat (w = ML_WEIGHT, 0.12), or
the E-core threat alone when the model did not reply. The first rule that
holds wins:

1. threat ≥ 0.85, or a guard veto with severity ``critical`` → QUARANTINE
2. threat ≥ 0.60, or any guard veto → ALERT
3. the largest weighted score among BALANCE (instability > 0.25, weight B),
   REPAIR (urgency > 0.10, weight R), OPTIMIZE (gain > 0.10, weight O),
   less the actions a guard blocks
4. STEADY

Guards are fail-closed: a required guard without a verdict is a veto with
reason ``missing``. A core that did not reply counts as neutral.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from venom.daemon.config.settings import Thresholds
from venom.schemas import Action, Decision, GuardVerdict, Weights


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """What one beat brought in. ``None`` means that core or the model did not reply."""

    beat: int
    e_threat: float | None
    model_threat: float | None
    stability: float | None
    urgency: float | None
    gain: float | None
    verdicts: Mapping[str, GuardVerdict]
    required_guards: Sequence[str] | frozenset[str]
    missing: Sequence[str]
    weights: Weights
    t_obs: float
    ml_weight: float | None = None


def combined_threat(e_threat: float | None, model_threat: float | None, w: float) -> float:
    """(1 − w)·E + w·model; E alone without the model; 0 without either."""
    if model_threat is None:
        return e_threat if e_threat is not None else 0.0
    if e_threat is None:
        return model_threat
    return (1.0 - w) * e_threat + w * model_threat


def decide(inputs: DecisionInputs, th: Thresholds) -> Decision:
    """Apply the rules to one beat's inputs."""
    w = th.ml_weight if inputs.ml_weight is None else inputs.ml_weight
    threat = combined_threat(inputs.e_threat, inputs.model_threat, w)
    stability = 1.0 if inputs.stability is None else inputs.stability
    urgency = 0.0 if inputs.urgency is None else inputs.urgency
    gain = 0.0 if inputs.gain is None else inputs.gain
    vetoes: list[str] = []
    blocked: set[Action] = set()
    critical, absent = _read_guards(inputs, vetoes, blocked)

    action: Action
    if threat >= th.threat_quarantine or critical:
        action, reason = "QUARANTINE", _quarantine_reason(threat, critical, th)
    elif threat >= th.threat_alert or vetoes:
        action, reason = "ALERT", _alert_reason(threat, vetoes, absent, th)
    else:
        action, reason = _best_candidate(stability, urgency, gain, blocked, inputs.weights, th)
    return Decision(
        beat=inputs.beat,
        action=action,
        threat=threat,
        stability=stability,
        urgency=urgency,
        gain=gain,
        weights=inputs.weights,
        vetoes=vetoes,
        missing=sorted(inputs.missing),
        t_obs=inputs.t_obs,
        reason=reason,
        blocked=sorted(blocked),
    )


def _read_guards(
    inputs: DecisionInputs, vetoes: list[str], blocked: set[Action]
) -> tuple[str, list[str]]:
    """Fill ``vetoes`` (sorted, the absent required guards included) and
    ``blocked``; return the first guard with a critical veto ("" if none) and
    the required guards without a verdict."""
    critical = ""
    for name, verdict in inputs.verdicts.items():
        if not verdict.allow:
            vetoes.append(name)
            if verdict.severity == "critical" and not critical:
                critical = name
        if verdict.blocks:
            blocked.update(verdict.blocks)
    absent = [g for g in inputs.required_guards if g not in inputs.verdicts]
    vetoes.extend(absent)
    vetoes.sort()
    return critical, absent


def _quarantine_reason(threat: float, critical: str, th: Thresholds) -> str:
    """Rule 1: the threat first, then the critical veto."""
    if threat >= th.threat_quarantine:
        return f"threat {threat:.2f} >= {th.threat_quarantine:.2f}"
    return f"critical veto by {critical}"


def _alert_reason(threat: float, vetoes: list[str], absent: list[str], th: Thresholds) -> str:
    """Rule 2: the threat first, then a missing required guard, then the vetoes."""
    if threat >= th.threat_alert:
        return f"threat {threat:.2f} >= {th.threat_alert:.2f}"
    if absent:
        return f"missing required guard {', '.join(sorted(absent))}"
    return f"veto by {', '.join(vetoes)}"


def _best_candidate(
    stability: float,
    urgency: float,
    gain: float,
    blocked: set[Action],
    weights: Weights,
    th: Thresholds,
) -> tuple[Action, str]:
    """Rules 3 and 4: the largest weighted score above its threshold, else STEADY."""
    action: Action = "STEADY"
    reason = ""
    best = 0.0
    instability = 1.0 - stability
    # Order matters for ties: BALANCE, then REPAIR, then OPTIMIZE.
    candidates: tuple[tuple[Action, float, float, float, str], ...] = (
        ("BALANCE", instability, th.stability, weights.B, "instability"),
        ("REPAIR", urgency, th.repair, weights.R, "urgency"),
        ("OPTIMIZE", gain, th.opt_gain, weights.O, "gain"),
    )
    for name, score, threshold, weight, label in candidates:
        if score > threshold and name not in blocked:
            weighted = score * weight
            if weighted > best:
                best = weighted
                action = name
                reason = f"{name}: {label} {score:.2f} x weight {weight:.2f}"
    if action == "STEADY":
        reason = "no candidate above its threshold"
    return action, reason
