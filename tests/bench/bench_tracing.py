"""What tracing costs the beat: ``venom bench daemon`` with tracing off and on.

Runs the default plugin set as ``venom run`` does (embedded server, worker
processes, ledger) with tracing off, and on with 1 %, 10 % and 100 % of
beats sampled, interleaved over the rounds; each once at T_Λ (missed
ticks, beat p50/p99) and once back-to-back (``period = 0``: beats per
second, which is where extra CPU per beat shows). Spans go over OTLP/HTTP to
a sink in this process that reads and counts each request and answers 200,
so export, serialisation and the HTTP round trip are all paid for.

    .venv/bin/python -m tests.bench.bench_tracing [--beats 4000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio
import msgspec

from tests.otlp_sink import OtlpSink
from venom.daemon.bench.plugins import bench_daemon
from venom.daemon.config.settings import TelemetryConfig, VenomConfig


def _config(endpoint: str, ratio: float | None, period: float | None) -> VenomConfig:
    telemetry = (
        TelemetryConfig()
        if ratio is None
        else TelemetryConfig(otlp_endpoint=endpoint, sample_ratio=ratio)
    )
    cfg = VenomConfig(telemetry=telemetry)
    return msgspec.structs.replace(cfg, beat=msgspec.structs.replace(cfg.beat, period=period))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beats", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with OtlpSink() as sink:
        rows = _measure(sink, args.beats, args.rounds)
    _print(rows)


def _measure(sink: OtlpSink, beats: int, rounds: int) -> list[dict[str, Any]]:
    modes: dict[str, float | None] = {
        "off": None,
        "on 1%": 0.01,
        "on 10%": 0.1,
        "on 100%": 1.0,
    }
    rows: list[dict[str, Any]] = []
    for round_ in range(rounds):
        for label, ratio in modes.items():
            before = sink.bytes
            tl = anyio.run(bench_daemon, _config(sink.url, ratio, None), beats)
            b2b = anyio.run(bench_daemon, _config(sink.url, ratio, 0.0), beats // 2)
            row = {
                "round": round_ + 1,
                "tracing": label,
                "missed_ticks": tl["missed_ticks"],
                "late": tl["late_replies"],
                "beat_p50_ms": tl["beat_p50_ms"],
                "beat_p99_ms": tl["beat_p99_ms"],
                "b2b_beats_per_s": b2b["beats_per_s"],
                "b2b_p50_ms": b2b["beat_p50_ms"],
                "otlp_kib": round((sink.bytes - before) / 1024),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'tracing':<9} {'missed':>7} {'late':>6} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'b2b/s':>7} {'b2b p50':>8} {'OTLP KiB':>9}"
    )
    for r in rows:
        print(
            f"{r['tracing']:<9} {r['missed_ticks']:>7} {r['late']:>6} {r['beat_p50_ms']:>7} "
            f"{r['beat_p99_ms']:>7} {r['b2b_beats_per_s']:>7} {r['b2b_p50_ms']:>8} "
            f"{r['otlp_kib']:>9}"
        )


if __name__ == "__main__":
    main()
