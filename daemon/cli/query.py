"""Client commands: ``venom status``, ``venom tail``, ``venom plugins``.

They are ordinary NATS requests and subscriptions; everything they show can
be had with the ``nats`` CLI too (README: Inspect with the NATS CLI).
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import datetime
from typing import Any, TextIO

import anyio
import msgspec

from venom.daemon.beat.discovery import Discovery
from venom.daemon.bus.base import Bus, BusMessage, header
from venom.schemas import (
    HDR_SERVICE_ERROR,
    BeatRecord,
    BusError,
    Codec,
    Decision,
    LedgerHead,
    Subjects,
)


async def fetch_status(
    bus: Bus, subjects: Subjects, timeout: float = 2.0, *, arbiter: str = ""
) -> dict[str, Any]:
    """Request ``<prefix>.ctl.status`` (the leader's; ``arbiter``: that epoch's), decoded."""
    subject = subjects.ctl_of(arbiter).replace("*", "status") if arbiter else subjects.ctl_status
    try:
        reply = await bus.request(subject, b"", timeout=timeout)
    except BusError as exc:
        raise BusError(f"no arbiter answered on {subject} ({exc})") from exc
    if header(reply, HDR_SERVICE_ERROR):
        raise BusError(f"status request failed: {header(reply, HDR_SERVICE_ERROR)}")
    try:
        result = msgspec.json.decode(reply.data)
    except msgspec.DecodeError as exc:
        raise BusError(f"the answer on {subject} is not JSON: {exc}") from exc
    if not isinstance(result, dict):
        raise BusError(f"the answer on {subject} is not a JSON object")
    return result


def _hms(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def format_message(subject: str, data: bytes, subjects: Subjects, codec: Codec) -> str:
    """One readable line for a message on a venom subject."""
    now = _hms(time.time())
    try:
        if subject == subjects.decision:
            d = codec.decode(Decision, data)
            extra = f" vetoes={','.join(d.vetoes)}" if d.vetoes else ""
            extra += f" missing={','.join(d.missing)}" if d.missing else ""
            w = d.weights
            return (
                f"{now} beat {d.beat:>8} {d.action:<10} threat={d.threat:.3f} "
                f"stab={d.stability:.3f} urg={d.urgency:.3f} gain={d.gain:.3f} "
                f"w=R{w.R:.2f}/B{w.B:.2f}/E{w.E:.2f}/O{w.O:.2f} "
                f"t_obs={d.t_obs * 1e3:.2f}ms{extra}"
            )
        if subject == subjects.beat:
            r = codec.decode(BeatRecord, data)
            return (
                f"{now} beat {r.beat:>8} {r.decision.action:<10} replies={len(r.replies)} "
                f"missing={len(r.report.missing)} trace={r.trace_id}"
            )
        if subject == subjects.ledger_head:
            h = codec.decode(LedgerHead, data)
            return f"{now} ledger size={h.size} root={h.root}"
    except Exception as exc:
        return f"{now} {subject} <undecodable: {exc}>"
    text = data.decode("utf-8", "replace")
    return f"{now} {subject} {text[:300]}"


async def tail(
    bus: Bus,
    subject: str,
    subjects: Subjects,
    *,
    as_json: bool = False,
    count: int = 0,
    out: TextIO = sys.stdout,
    codec: Codec | None = None,
) -> int:
    """Print messages on ``subject`` until interrupted (or ``count`` messages)."""
    codec = codec or Codec()
    seen = 0
    done = anyio.Event()

    async def show(msg: BusMessage) -> None:
        nonlocal seen
        if done.is_set():
            return
        if as_json:
            out.write(json.dumps({"subject": msg.subject, "data": _json_or_text(msg.data)}) + "\n")
        else:
            out.write(format_message(msg.subject, msg.data, subjects, codec) + "\n")
        out.flush()
        seen += 1
        if count and seen >= count:
            done.set()

    sub = await bus.subscribe(subject, show)
    try:
        while not done.is_set():
            with anyio.move_on_after(0.25):
                await done.wait()
            if bus.refused:
                raise BusError(
                    f"cannot follow {subject}: {bus.refused} (a client without credentials "
                    f"reads {subjects.prefix}.> only; give --nats nats://USER:PASSWORD@HOST:PORT)"
                )
    finally:
        await sub.unsubscribe()
    return seen


def _json_or_text(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data.decode("utf-8", "replace")


async def list_plugins(bus: Bus, subjects: Subjects, timeout: float = 0.5) -> list[dict[str, Any]]:
    """What discovery sees: one dict per plugin, with stats from ``$SRV.STATS``."""
    disc = Discovery(prefix=subjects.prefix, quiet=True)
    await disc.refresh(bus, timeout)
    stats = await bus.request_many("$SRV.STATS", b"", timeout=timeout)
    per_id: dict[str, dict[str, Any]] = {}
    for msg in stats:
        try:
            doc = msgspec.json.decode(msg.data)
        except msgspec.DecodeError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            per_id[doc["id"]] = doc
    rows = []
    for name, entry in sorted(disc.plugins.items()):
        requests = errors = late = 0
        p50: list[int] = []
        p99: list[int] = []
        last: list[int] = []
        for iid in entry.instances:
            for ep in _endpoints(per_id.get(iid, {})):
                data = ep.get("data")
                data = data if isinstance(data, dict) else {}
                requests += _count(ep.get("num_requests"))
                errors += _count(ep.get("num_errors"))
                late += _count(data.get("late"))
                p50.append(_count(data.get("p50_ns")))
                p99.append(_count(data.get("p99_ns")))
                last.append(_count(data.get("last_ns")))
        rows.append(
            {
                "name": name,
                "role": entry.role,
                "version": entry.version,
                "instances": len(entry.instances),
                "pulses": requests,
                "errors": errors,
                "late": late,
                "last_us": round(max(last, default=0) / 1e3, 1),
                "p50_us": round(max(p50, default=0) / 1e3, 1),
                "p99_us": round(max(p99, default=0) / 1e3, 1),
            }
        )
    return rows


def _endpoints(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """The endpoint entries of a ``$SRV.STATS`` answer; whatever is not one is skipped."""
    found = stats.get("endpoints")
    return [ep for ep in found if isinstance(ep, dict)] if isinstance(found, list) else []


def _count(value: object) -> int:
    """A figure from a ``$SRV.STATS`` answer; 0 when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value) if math.isfinite(value) else 0


def print_table(
    rows: list[dict[str, Any]], out: TextIO = sys.stdout, empty: str = "(none)"
) -> None:
    """A plain aligned table of ``rows``."""
    if not rows:
        out.write(empty + "\n")
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    out.write("  ".join(k.upper().ljust(widths[k]) for k in keys).rstrip() + "\n")
    for r in rows:
        out.write("  ".join(str(r[k]).ljust(widths[k]) for k in keys).rstrip() + "\n")
