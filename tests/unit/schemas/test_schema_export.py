"""``venom schema export DIR``: JSON Schemas a plugin in another language can trust (SPEC 4).

The exported files are checked as JSON Schema (against the 2020-12
metaschema), then used the way another language would use them: real
messages from a simulated run validate, and wrong ones are refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from venom.daemon.config.settings import PluginsConfig, VenomConfig
from venom.daemon.service.simulate import simulate
from venom.schemas import Codec, Label, LedgerHead
from venom.schemas.export import WIRE_TYPES

PLUGINS = ["optical-plant", "kalman", "thermal", "gate", "regen-core", "balance-core"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("schemas")
    run = subprocess.run(
        [sys.executable, "-m", "venom.daemon", "schema", "export", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    printed = sorted(Path(line).name for line in run.stdout.split())
    assert printed == sorted(f"{name}.schema.json" for name in WIRE_TYPES)
    return {p.name.split(".")[0]: json.loads(p.read_text()) for p in out.glob("*.schema.json")}


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_every_file_is_a_valid_2020_12_schema(exported: dict[str, dict[str, Any]]) -> None:
    assert set(exported) == set(WIRE_TYPES)
    for name, schema in exported.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] == name
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.anyio
async def test_real_messages_validate_and_wrong_ones_do_not(
    exported: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    config = VenomConfig(plugins=PluginsConfig(run=PLUGINS, processes=0))
    sim = await simulate(config, 30, tmp_path)
    codec = Codec()

    def as_json(message: msgspec.Struct) -> Any:
        return json.loads(codec.encode(message))

    record = sim.records[-1]
    docs: dict[str, list[Any]] = {
        "BeatRecord": [as_json(r) for r in sim.records],
        "Pulse": [as_json(r.pulse) for r in sim.records],
        "Decision": [as_json(r.decision) for r in sim.records],
        "GatherReport": [as_json(r.report) for r in sim.records],
        "Reply": [as_json(reply) for reply in record.replies.values()],
        "LedgerHead": [as_json(LedgerHead(size=3, root="ab" * 32, time=1.5))],
        "Label": [as_json(Label(beat=4, label=1))],
    }
    kinds = {type(reply).__name__ for reply in record.replies.values()}
    assert {"CoreReply", "EstimateReply", "GuardVerdict", "Telemetry"} <= kinds
    for reply in record.replies.values():
        docs.setdefault(type(reply).__name__, []).append(as_json(reply))
    for name, items in docs.items():
        validator = _validator(exported[name])
        for doc in items:
            validator.validate(doc)

    verdict = next(d for d in docs["GuardVerdict"])
    reply = _validator(exported["Reply"])
    wrong = [
        {**verdict, "allow": "yes"},  # wrong type
        {k: v for k, v in verdict.items() if k != "guard"},  # required field gone
        {**verdict, "type": "nonsense"},  # no such reply
        {**verdict, "severity": "apocalyptic"},  # not one of the severities
    ]
    for doc in wrong:
        with pytest.raises(jsonschema.ValidationError):
            reply.validate(doc)
    pulse = _validator(exported["Pulse"])
    with pytest.raises(jsonschema.ValidationError):
        pulse.validate({**docs["Pulse"][0], "beat": "one"})
