"""The embedded server's users on a real nats-server (daemon/bus/credentials.py).

The server is started as `venom run` starts it: ``-c <state>/nats-server.conf``
with the generated passwords. A client without credentials is the inspector:
`venom tail` of a venom subject works, one of another subject is refused at
the server and `venom tail` says so in one line instead of waiting forever.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import nats
import pytest

from venom.daemon.bus.accounts import Names
from venom.daemon.bus.credentials import load_credentials, write_server_config
from venom.daemon.bus.embedded import NatsServerProcess

pytestmark = pytest.mark.integration


def test_a_stranger_reads_venom_and_is_told_when_refused(tmp_path: Path) -> None:
    credentials = load_credentials(tmp_path, create=True)
    conf = write_server_config(tmp_path, Names(durable="*"), credentials)
    server = NatsServerProcess(tmp_path / "store", extra_args=["-c", str(conf)])
    url = server.start()
    try:
        tail = [
            sys.executable,
            "-m",
            "venom.daemon",
            "tail",
            "--nats",
            url,
            "--count",
            "1",
            "--json",
        ]
        follower = subprocess.Popen(
            [*tail, "venom.decision"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

        async def publish_as_arbiter() -> None:
            nc = await nats.connect(url, user="arbiter", password=credentials["arbiter"])
            try:
                with anyio.fail_after(60):
                    while follower.poll() is None:
                        await nc.publish("venom.decision", b'{"beat": 1}')
                        await nc.flush()
                        await anyio.sleep(0.2)
            finally:
                await nc.close()

        try:
            anyio.run(publish_as_arbiter)
            out, err = follower.communicate(timeout=30)
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.communicate()
        assert follower.returncode == 0, err
        assert json.loads(out) == {"subject": "venom.decision", "data": {"beat": 1}}
        refused = subprocess.run(
            [*tail, "other.subject"], capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode != 0
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1, refused.stderr
        assert lines[0].startswith("venom: error: cannot follow other.subject: ")
        assert "permissions violation for subscription" in lines[0]
    finally:
        server.stop()
