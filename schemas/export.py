"""JSON Schema export, so plugins in other languages can be written (SPEC 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from venom.schemas import messages as m

#: Message name → type, for every message that goes on the wire.
WIRE_TYPES: dict[str, Any] = {
    "Pulse": m.Pulse,
    "Reply": m.Reply,
    "CoreReply": m.CoreReply,
    "EstimateReply": m.EstimateReply,
    "GuardVerdict": m.GuardVerdict,
    "ThreatReply": m.ThreatReply,
    "Telemetry": m.Telemetry,
    "ErrorReply": m.ErrorReply,
    "ReplyBatch": m.ReplyBatch,
    "Decision": m.Decision,
    "GatherReport": m.GatherReport,
    "BeatRecord": m.BeatRecord,
    "LedgerHead": m.LedgerHead,
    "Anomaly": m.Anomaly,
    "MlWeight": m.MlWeight,
    "Label": m.Label,
    "Status": m.Status,
    "ControlAck": m.ControlAck,
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of wire message ``name``."""
    schema = msgspec.json.schema(WIRE_TYPES[name])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = name
    return schema


def export_schemas(directory: Path) -> list[Path]:
    """Write ``<Name>.schema.json`` for every wire message into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(WIRE_TYPES):
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(json_schema(name), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
