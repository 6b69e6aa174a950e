"""The published ADR-32 schemas (tests/data/nats-micro-v1) and a validator as the NATS CLI's."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

DATA = Path(__file__).resolve().parent / "data" / "nats-micro-v1"
#: The project's reference copy, beside the repository (in CI and sessions).
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "nats-micro-v1"
VERBS = ("PING", "INFO", "STATS")


def data_path(name: str) -> Path:
    return DATA / name


@cache
def adr32_schema(verb: str) -> dict[str, Any]:
    """The published response schema of ``$SRV.<verb>`` (draft-07, as it declares)."""
    schema: dict[str, Any] = json.loads((DATA / f"{verb.lower()}_response.json").read_text())
    return schema


def check_adr32(verb: str, doc: dict[str, Any]) -> None:
    """Validate one response as the NATS CLI does, date-time formats included."""
    schema = adr32_schema(verb)
    validator = jsonschema.validators.validator_for(schema)
    assert validator is jsonschema.Draft7Validator
    validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
