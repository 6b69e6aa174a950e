"""Decision rules of SPEC 2.3 driven by crafted inputs (issue 2, item 3)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venom.daemon.beat.decision import DecisionInputs, combined_threat, decide
from venom.daemon.config.settings import Thresholds
from venom.schemas import ACTIONS, GuardVerdict, Weights

TH = Thresholds()


def inputs(**kw: Any) -> DecisionInputs:
    base: dict[str, Any] = {
        "beat": 1,
        "e_threat": 0.0,
        "model_threat": None,
        "stability": 1.0,
        "urgency": 0.0,
        "gain": 0.0,
        "verdicts": {},
        "required_guards": (),
        "missing": (),
        "weights": Weights(),
        "t_obs": 0.001,
    }
    base.update(kw)
    return DecisionInputs(**base)


def veto(name: str, severity: str = "warning") -> GuardVerdict:
    return GuardVerdict(guard=name, allow=False, severity=severity)  # type: ignore[arg-type]


def test_quarantine_by_threat() -> None:
    d = decide(inputs(e_threat=0.85), TH)
    assert d.action == "QUARANTINE"
    assert "threat" in d.reason


def test_quarantine_by_critical_veto_even_at_zero_threat() -> None:
    d = decide(inputs(verdicts={"dissonance": veto("dissonance", "critical")}), TH)
    assert d.action == "QUARANTINE"
    assert d.vetoes == ["dissonance"]
    assert "critical" in d.reason


def test_alert_by_threat() -> None:
    assert decide(inputs(e_threat=0.6), TH).action == "ALERT"
    assert decide(inputs(e_threat=0.5999), TH).action == "STEADY"


def test_alert_by_any_non_critical_veto() -> None:
    d = decide(
        inputs(
            verdicts={"gate": veto("gate", "warning"), "ok": GuardVerdict(guard="ok", allow=True)}
        ),
        TH,
    )
    assert d.action == "ALERT"
    assert d.vetoes == ["gate"]


def test_required_guard_that_did_not_reply_fails_closed() -> None:
    d = decide(inputs(required_guards=("cusum",), missing=("cusum",)), TH)
    assert d.action == "ALERT"
    assert d.vetoes == ["cusum"]
    assert d.missing == ["cusum"]
    assert "missing required guard cusum" in d.reason
    # The same guard present and allowing: no veto.
    ok = decide(
        inputs(
            required_guards=("cusum",), verdicts={"cusum": GuardVerdict(guard="cusum", allow=True)}
        ),
        TH,
    )
    assert ok.action == "STEADY"


def test_threat_outranks_vetoes_and_candidates() -> None:
    d = decide(inputs(e_threat=0.9, stability=0.0, verdicts={"g": veto("g")}), TH)
    assert d.action == "QUARANTINE"


@pytest.mark.parametrize(
    ("stability", "urgency", "gain", "weights", "expected"),
    [
        (0.5, 0.0, 0.0, Weights(), "BALANCE"),  # instability 0.5 > 0.25
        (1.0, 0.3, 0.0, Weights(), "REPAIR"),
        (1.0, 0.0, 0.3, Weights(), "OPTIMIZE"),
        # All three candidates; equal weights → the largest raw score wins.
        (0.6, 0.3, 0.2, Weights(), "BALANCE"),  # 0.4 vs 0.3 vs 0.2
        # Weights change the winner: R heavy makes REPAIR win over BALANCE.
        (0.6, 0.3, 0.2, Weights(R=0.7, B=0.1, E=0.1, O=0.1), "REPAIR"),  # .03 .21 .02
        (0.6, 0.3, 0.2, Weights(R=0.1, B=0.1, E=0.1, O=0.7), "OPTIMIZE"),  # .04 .03 .14
        # Thresholds are strict: exactly at the threshold is not a candidate.
        (0.75, 0.10, 0.10, Weights(), "STEADY"),
    ],
)
def test_candidates_by_weighted_score(
    stability: float, urgency: float, gain: float, weights: Weights, expected: str
) -> None:
    d = decide(inputs(stability=stability, urgency=urgency, gain=gain, weights=weights), TH)
    assert d.action == expected, d.reason


def test_blocked_action_falls_back_to_the_next_candidate() -> None:
    thermal = GuardVerdict(guard="thermal", allow=True, blocks=["OPTIMIZE"], recommend="high")
    d = decide(
        inputs(stability=0.7, gain=0.9, weights=Weights(), verdicts={"thermal": thermal}), TH
    )
    assert d.action == "BALANCE"
    assert d.blocked == ["OPTIMIZE"]
    d2 = decide(inputs(gain=0.9, verdicts={"thermal": thermal}), TH)
    assert d2.action == "STEADY"


def test_steady_when_nothing_holds() -> None:
    d = decide(inputs(), TH)
    assert d.action == "STEADY"
    assert d.vetoes == []


def test_missing_cores_count_as_neutral() -> None:
    d = decide(inputs(e_threat=None, stability=None, urgency=None, gain=None), TH)
    assert (d.action, d.threat, d.stability, d.urgency, d.gain) == ("STEADY", 0.0, 1.0, 0.0, 0.0)


def test_ml_weighting() -> None:
    assert combined_threat(0.5, 1.0, 0.12) == pytest.approx(0.56)
    assert combined_threat(0.5, None, 0.12) == 0.5
    assert combined_threat(None, 0.7, 0.12) == 0.7
    assert combined_threat(None, None, 0.12) == 0.0
    d = decide(inputs(e_threat=0.5, model_threat=1.0), TH)
    assert d.threat == pytest.approx(0.56)
    # A run-time ml_weight (venom.mesh.ml_weight) replaces the configured one.
    d = decide(inputs(e_threat=0.5, model_threat=1.0, ml_weight=0.5), TH)
    assert d.threat == pytest.approx(0.75)
    assert d.action == "ALERT"


finite01 = st.floats(min_value=0, max_value=1)


@given(
    e=finite01,
    m=st.none() | finite01,
    s=finite01,
    u=finite01,
    g=finite01,
    vetoed=st.booleans(),
    critical=st.booleans(),
)
def test_rules_hold_for_any_inputs(
    e: float, m: float | None, s: float, u: float, g: float, vetoed: bool, critical: bool
) -> None:
    verdicts = {"g": veto("g", "critical" if critical else "warning")} if vetoed else {}
    d = decide(
        inputs(e_threat=e, model_threat=m, stability=s, urgency=u, gain=g, verdicts=verdicts), TH
    )
    assert d.action in ACTIONS
    threat = combined_threat(e, m, TH.ml_weight)
    if threat >= 0.85 or (vetoed and critical):
        assert d.action == "QUARANTINE"
    elif threat >= 0.6 or vetoed:
        assert d.action == "ALERT"
    else:
        assert d.action not in ("QUARANTINE", "ALERT")


def test_aggregate_sorts_replies_by_type() -> None:
    from venom.daemon.beat.aggregate import aggregate
    from venom.schemas import CoreReply, EstimateReply, Telemetry, ThreatReply

    seen: list[Telemetry] = []
    replies = {
        "entropy-core": CoreReply(core="E", score=0.5, details={"anomalies": 2.0}),
        "balance-core": CoreReply(core="B", score=0.7),
        "regen-core": CoreReply(core="R", score=0.2),
        "optimize-core": CoreReply(core="O", score=0.3),
        "cusum": GuardVerdict(guard="cusum", allow=False, metric=4.5),
        "entropy-model": ThreatReply(model="m", threat=0.9, ml_weight=0.2),
        "kalman": EstimateReply(estimator="kalman", values={"nis": 1.5}),
        "plant": Telemetry(source="plant", values={"t": 40.0}),
    }
    inputs, context = aggregate(
        1,
        replies,
        missing=["x"],
        required_guards=("cusum",),
        weights=Weights(),
        t_obs=0.001,
        on_telemetry=seen.append,
    )
    assert (inputs.e_threat, inputs.stability, inputs.urgency, inputs.gain) == (0.5, 0.7, 0.2, 0.3)
    assert (inputs.model_threat, inputs.ml_weight) == (0.9, 0.2)
    assert set(inputs.verdicts) == {"cusum"}
    assert context["entropy-core.anomalies"] == 2.0
    assert context["kalman.nis"] == 1.5
    assert context["cusum.metric"] == 4.5
    assert [t.source for t in seen] == ["plant"]
    d = decide(inputs, TH)
    assert d.threat == pytest.approx(0.8 * 0.5 + 0.2 * 0.9)
    assert d.action == "ALERT"
    overridden, _ = aggregate(
        1, replies, missing=[], required_guards=(), weights=Weights(), t_obs=0.0, ml_weight=0.5
    )
    assert overridden.ml_weight == 0.5
