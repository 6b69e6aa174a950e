"""CPU per beat of a whole ``venom run``, for pairing two installs in one run.

``venom bench daemon`` measures only the venom it belongs to; this script
measures any ``venom`` command the same way from outside, so a commit can
be compared with an older one installed beside it
(``../shared/tools/beside.sh COMMIT``)::

    python -m tests.bench.bench_cpu_per_beat OLD_VENOM NEW_VENOM --period 0 --rounds 2

For each command, alternating: start ``venom run`` (embedded server,
default set) in a fresh state directory, follow ``<prefix>.decision`` on
its server, wait until a decision misses no plugin (or 60 s), then over a
``--window`` of seconds count the beats and read the CPU time of the whole
process tree from ``/proc``. Prints beats/s and CPU ms per beat, per
process and summed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import nats

from venom.daemon.bench import proccpu


async def _measure(venom: str, period: float | None, window: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="venom-cpu-") as tmp:
        state = Path(tmp)
        cmd = [venom, "run", "--state-dir", str(state), "--no-live", "--seed", "0"]
        if period is not None:
            cmd += ["--period", str(period)]
        with open(state / "stderr.log", "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        try:
            url_file = state / "nats.url"
            with anyio.fail_after(60):
                while not url_file.exists() or not url_file.read_text().strip():
                    await anyio.sleep(0.1)
            nc = await nats.connect(url_file.read_text().strip())
            seen = {"beats": 0, "complete": False}

            async def on_decision(msg: Any) -> None:
                seen["beats"] += 1
                if not json.loads(msg.data).get("missing"):
                    seen["complete"] = True

            await nc.subscribe("venom.decision", cb=on_decision)
            settle_until = time.monotonic() + 60
            while not seen["complete"] and time.monotonic() < settle_until:
                await anyio.sleep(0.2)
            await anyio.sleep(2.0)
            labels: dict[int, str] = {}
            first = proccpu.sample(proc.pid)
            b0, t0 = seen["beats"], time.monotonic()
            await anyio.sleep(window)
            last = proccpu.sample(proc.pid)
            b1, t1 = seen["beats"], time.monotonic()
            for pid in last:
                labels[pid] = "arbiter" if pid == proc.pid else proccpu.label(pid)
            await nc.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    beats = max(1, b1 - b0)
    spent = proccpu.per_process(first, last, labels)
    return {
        "venom": venom,
        "complete": seen["complete"],
        "beats_per_s": round((b1 - b0) / (t1 - t0), 1),
        "cpu_ms_per_beat": {k: round(v * 1e3 / beats, 3) for k, v in sorted(spent.items())},
        "cpu_ms_per_beat_total": round(sum(spent.values()) * 1e3 / beats, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("venoms", nargs="+", help="venom commands to compare")
    parser.add_argument("--period", type=float, default=None, help="fixed period (0: back-to-back)")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for r in range(args.rounds):
        for venom in args.venoms:
            result = anyio.run(_measure, venom, args.period, args.window)
            print(json.dumps({"round": r, **result}), flush=True)


if __name__ == "__main__":
    main()
