"""$SRV.PING/INFO/STATS answers validate against the published ADR-32 schemas."""

from __future__ import annotations

import jsonschema
import msgspec
import pytest

from tests.adr32 import REFERENCE, VERBS, check_adr32, data_path
from tests.helpers import Echo, make_config
from venom.daemon.beat.arbiter import Arbiter
from venom.daemon.bus.memorybus import MemoryBus
from venom.plugins.host import PluginHost


def test_format_checks_are_active() -> None:
    # Without rfc3339-validator jsonschema skips "date-time" silently.
    bad = {"type": "io.nats.micro.v1.stats_response", "name": "x", "id": "1"}
    bad |= {"version": "1.0.0", "started": "yesterday", "endpoints": []}
    with pytest.raises(jsonschema.ValidationError, match="date-time"):
        check_adr32("STATS", bad)
    with pytest.raises(jsonschema.ValidationError):
        check_adr32("INFO", {"type": "io.nats.micro.v1.info_response", "name": "x"})


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="shared/reference not beside the repo")
def test_vendored_schemas_equal_the_reference() -> None:
    for verb in VERBS:
        name = f"{verb.lower()}_response.json"
        assert (data_path(name)).read_bytes() == (REFERENCE / name).read_bytes()


@pytest.mark.anyio
async def test_plugin_and_arbiter_answers_validate() -> None:
    bus = MemoryBus()
    async with PluginHost([Echo()], bus):
        arbiter = Arbiter(bus, make_config())
        await arbiter.service.start(bus)
        for verb in VERBS:
            replies = await bus.request_many(f"$SRV.{verb}", b"", timeout=0.05)
            assert len(replies) == 2
            for reply in replies:
                check_adr32(verb, msgspec.json.decode(reply.data))
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
