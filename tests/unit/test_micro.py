"""$SRV.PING/INFO/STATS answers validate against the published ADR-32 schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest

from tests.helpers import Echo, make_config
from venom.daemon.arbiter import Arbiter
from venom.daemon.memorybus import MemoryBus
from venom.plugins.host import PluginHost

pytestmark = pytest.mark.anyio

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "nats-micro-v1"
SCHEMAS = (
    {
        verb: json.loads((REFERENCE / f"{verb.lower()}_response.json").read_text())
        for verb in ("PING", "INFO", "STATS")
    }
    if REFERENCE.is_dir()
    else {}
)


@pytest.mark.skipif(not SCHEMAS, reason="shared/reference/nats-micro-v1 not beside the repo")
async def test_plugin_and_arbiter_answers_validate() -> None:
    bus = MemoryBus()
    async with PluginHost([Echo()], bus):
        arbiter = Arbiter(bus, make_config())
        await arbiter.service.start(bus)
        for verb, schema in SCHEMAS.items():
            replies = await bus.request_many(f"$SRV.{verb}", b"", timeout=0.05)
            assert len(replies) == 2
            for reply in replies:
                doc = msgspec.json.decode(reply.data)
                jsonschema.validate(doc, schema, format_checker=jsonschema.FormatChecker())
            names = {msgspec.json.decode(r.data)["name"] for r in replies}
            assert names == {"venom-echo", "venom-arbiter"}
        # Per name and per id.
        one = await bus.request_many("$SRV.INFO.venom-echo", b"", timeout=0.05)
        assert len(one) == 1
        info = msgspec.json.decode(one[0].data)
        assert info["metadata"]["venom.role"] == "estimator"
        assert info["endpoints"][0]["queue_group"] == "venom.echo"
        by_id = await bus.request_many(f"$SRV.PING.venom-echo.{info['id']}", b"", timeout=0.05)
        assert len(by_id) == 1
        await arbiter.service.stop()
    await bus.close()
