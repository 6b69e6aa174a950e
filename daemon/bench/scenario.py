"""``venom bench scenario``: how well the default set controls the plant, as users run it.

The daemon runs as ``venom run`` does (embedded server, worker processes,
the ledger) on a scenario (default: ``default``, seed 0, 2,300 beats) at the
configured period (T_Λ unless ``--period``); the beat records are read back
from its ledger and judged against the targets:

- every disturbance flagged (a veto, ALERT or QUARANTINE) within the beats
  docs/catalog.md documents (:data:`DETECTION_BEATS`);
- at least 95 % of the decisions outside the disturbances calm;
- the plant's temperature below its limit (85 °C);
- the model's ROC-AUC over the second half at least 0.9;
- fewer than 0.1 % of the expected replies missing.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import msgspec

from venom.daemon.config.settings import VenomConfig
from venom.daemon.service.run import run_daemon
from venom.plugins.ledger.entry import parse_entry
from venom.plugins.ledger.store import LedgerStore
from venom.plugins.sensors.scenario import load_scenario
from venom.schemas import BeatRecord, Telemetry, ThreatReply

#: Beats from a disturbance's start to its first flag, as docs/catalog.md
#: documents them. The features of beat n are the plant's telemetry of
#: beat n - 1, so one beat is the least.
DETECTION_BEATS = {
    "thermal_spike": 10,
    "jitter_burst": 3,
    "sensor_dropout": 3,
    "coherence_drop": 3,
}
ALARMS = ("ALERT", "QUARANTINE")
CALM_SHARE = 0.95
LIMIT_C = 85.0
MIN_AUC = 0.9
MAX_MISSING = 0.001


def flagged(record: BeatRecord) -> bool:
    """A veto, ALERT or QUARANTINE."""
    return record.decision.action in ALARMS or bool(record.decision.vetoes)


def auc(scores: list[float], labels: list[int]) -> float:
    """ROC-AUC by the Mann-Whitney U statistic (ties count one half); NaN without both kinds."""
    ranked = sorted(zip(scores, labels, strict=True))
    pos = sum(labels)
    neg = len(labels) - pos
    if not pos or not neg:
        return math.nan
    # Rank sum of the positives, ties sharing their mean rank.
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + 1 + j) / 2
        rank_sum += mean_rank * sum(y for _, y in ranked[i:j])
        i = j
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def read_records(state_dir: Path) -> list[BeatRecord]:
    """Every beat record in the ledger under ``state_dir``, in order."""
    store = LedgerStore(state_dir / "plugins" / "ledger", readonly=True)
    try:
        return [parse_entry(store.read(i), i).record for i in range(store.size)]
    finally:
        store.close()


def judge(records: list[BeatRecord], scenario_name: str) -> dict[str, Any]:
    """The figures of a run and whether each meets its target."""
    scenario = load_scenario(scenario_name)
    by_beat = {r.beat: r for r in records}
    detection: dict[str, dict[str, int | None]] = {}
    late: list[str] = []
    for d in scenario.disturbance:
        bound = DETECTION_BEATS.get(d.kind, 3)
        first = next(
            (b for b in range(d.start, d.start + bound) if b in by_beat and flagged(by_beat[b])),
            None,
        )
        name = f"{d.kind}@{d.start}"
        detection[name] = {"beats": None if first is None else first - d.start, "bound": bound}
        if first is None:
            late.append(name)
    quiet = [r for r in records if not scenario.active(r.beat)]
    calm = sum(1 for r in quiet if r.decision.action not in ALARMS) / max(1, len(quiet))
    temps = [
        t.values["temperature"]
        for r in records
        if isinstance(t := r.replies.get("optical-plant"), Telemetry) and "temperature" in t.values
    ]
    second = records[len(records) // 2 :]
    scores, labels = [], []
    for r in second:
        reply = r.replies.get("entropy-model")
        if isinstance(reply, ThreatReply):
            scores.append(reply.threat)
            labels.append(1 if scenario.active(r.beat) else 0)
    expected = sum(len(r.report.expected) for r in records)
    missing = sum(len(r.report.missing) for r in records)
    figures: dict[str, Any] = {
        "beats": len(records),
        "detection": detection,
        "calm_share": round(calm, 4),
        "max_temperature_c": round(max(temps), 2) if temps else None,
        "model_auc": round(auc(scores, labels), 4) if scores else None,
        "model_answered_share": round(len(scores) / max(1, len(second)), 4),
        "missing_share": round(missing / max(1, expected), 5),
        "expected_replies": expected,
    }
    figures["targets"] = {
        "detection": not late,
        "calm": calm >= CALM_SHARE,
        "temperature": bool(temps) and max(temps) < LIMIT_C,
        "model_auc": figures["model_auc"] is not None and figures["model_auc"] >= MIN_AUC,
        "missing": figures["missing_share"] < MAX_MISSING,
    }
    return figures


async def bench_scenario(
    config: VenomConfig, beats: int, scenario: str = "default"
) -> dict[str, Any]:
    """Run ``scenario`` for ``beats`` beats as ``venom run`` does and judge it."""
    config = msgspec.structs.replace(
        config,
        run=msgspec.structs.replace(config.run, live=False, state_dir="", scenario=scenario),
    )
    with TemporaryDirectory(prefix="venom-scenario-") as tmp:
        t0 = time.monotonic()
        arbiter = await run_daemon(config, Path(tmp), beats=beats, live=False)
        wall = time.monotonic() - t0
        if arbiter is None:
            raise RuntimeError("the daemon was stopped during start-up")
        figures = judge(read_records(Path(tmp)), scenario)
    figures.update(
        scenario=scenario,
        seed=config.beat.seed,
        period_ms=round(arbiter.period * 1e3, 3),
        missed_ticks=arbiter.scheduler.missed,
        wall_s=round(wall, 1),
    )
    return figures


def format_scenario_results(f: dict[str, Any]) -> str:
    ok = f["targets"]

    def mark(key: str) -> str:
        return "ok  " if ok[key] else "MISS"

    lines = [
        f"scenario {f['scenario']}, seed {f['seed']}, {f['beats']} beats at "
        f"{f['period_ms']} ms ({f['missed_ticks']} missed ticks), {f['wall_s']} s",
    ]
    for name, d in f["detection"].items():
        after = f"flagged {d['beats']} beat(s) after it began"
        got = "not flagged" if d["beats"] is None else after
        lines.append(f"  {name:<24} {got} (bound {d['bound']})")
    lines += [
        f"{mark('detection')} every disturbance flagged within its bound (docs/catalog.md)",
        f"{mark('calm')} calm outside the disturbances: {100 * f['calm_share']:.1f} % (>= 95 %)",
        f"{mark('temperature')} max temperature: {f['max_temperature_c']} °C (< 85)",
        f"{mark('model_auc')} model ROC-AUC, second half: {f['model_auc']} (>= 0.9; "
        f"answered in time in {100 * f['model_answered_share']:.1f} % of those beats)",
        f"{mark('missing')} expected replies missing: {100 * f['missing_share']:.3f} % "
        f"of {f['expected_replies']} (< 0.1 %)",
    ]
    return "\n".join(lines)
