"""The NATS users of a venom deployment and their permissions (SPEC 5.1 subjects).

One table, :func:`account_users`, says who may publish and subscribe to
what; it renders the accounts of ``ops/nats/accounts.conf`` (passwords as
``$NATS_PASSWORD_<USER>`` variables, see :data:`FILE_HEADER`) and of the
embedded server's ``<state>/nats-server.conf`` (passwords written in), so
the shipped file and what ``venom run`` runs cannot drift apart (a test
compares them; ``python -m venom.daemon.bus.accounts`` prints the file).

The embedded server's passwords: :mod:`venom.daemon.bus.credentials`.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

from venom.daemon.bus.streamtail import STREAM, ha_bucket, stream_name
from venom.schemas import Subjects

log = logging.getLogger("venom.embedded")

USERS = ("arbiter", "plugin", "ledger", "inspector", "admin")
#: The ledger's durable consumer by default (plugins.settings.ledger.durable).
LEDGER_DURABLE = "venom-ledger"
#: One connection hosts several plugins (a queue group and a micro service each),
#: so one request is answered up to once per plugin.
RESPONSES = {"max": 64, "expires": "5s"}


@dataclass(frozen=True)
class Names:
    """What the permissions name: the subject prefix, the beat stream, the ledger's durable."""

    prefix: str = "venom"
    stream: str = STREAM
    durable: str = LEDGER_DURABLE
    bucket: str = "VENOM_HA"

    @classmethod
    def of(cls, subjects: Subjects, durable: str = LEDGER_DURABLE) -> Names:
        return cls(subjects.prefix, stream_name(subjects), durable, ha_bucket(subjects))


class Variable(str):
    """A config variable reference, written unquoted (``$NATS_PASSWORD_ARBITER``)."""


class Bare(str):
    """A word written unquoted (a user name), as nats-server's config reads it."""


def password_variable(user: str) -> Variable:
    return Variable(f"$NATS_PASSWORD_{user.upper()}")


def account_users(names: Names) -> list[tuple[str, str, dict[str, Any]]]:
    """(user, why, permissions) of each user; the admin's permissions are empty (all)."""
    p, s, d, b = names.prefix, names.stream, names.durable, names.bucket
    js = "$JS.API"
    mesh = [f"{p}.mesh.>", f"{p}.telemetry.*"]
    plugin = {
        "publish": {"allow": mesh},
        "subscribe": {"allow": [f"{p}.pulse", f"{p}.mesh.>", "$SRV.>"]},
        "allow_responses": RESPONSES,
    }
    return [
        (
            "arbiter",
            "The arbiter: pulse out, replies in on its inbox, decision and beat record "
            "out, the beat stream created if missing and its tail read (to continue "
            "after a restart or take over), control requests and discovery; with "
            "[ha]: the beat stream and the leader's heartbeat followed, the leader "
            f"entry in the {b} bucket.",
            {
                "publish": {
                    "allow": [
                        f"{p}.pulse",
                        f"{p}.decision",
                        f"{p}.beat",
                        f"{p}.ha.leader",
                        f"{js}.STREAM.INFO.{s}",
                        f"{js}.STREAM.CREATE.{s}",
                        f"{js}.STREAM.MSG.GET.{s}",
                        f"{js}.STREAM.INFO.KV_{b}",
                        f"{js}.STREAM.CREATE.KV_{b}",
                        f"$KV.{b}.>",
                        "$SRV.PING",
                        "$SRV.INFO",
                    ]
                },
                "subscribe": {
                    "allow": [
                        f"{p}.telemetry.*",
                        f"{p}.mesh.>",
                        f"{p}.ctl.*",
                        f"{p}.ctl.*.*",
                        f"{p}.beat",
                        f"{p}.ha.leader",
                        "$SRV.>",
                        "_INBOX.>",
                    ]
                },
                "allow_responses": RESPONSES,
            },
        ),
        (
            "plugin",
            "Plugin workers: answer the pulse (in their queue groups) and discovery, "
            "talk on the mesh, publish sensor telemetry. Nothing else: no decision, "
            "no beat record, no control, no JetStream.",
            plugin,
        ),
        (
            "ledger",
            "The ledger: a plugin (it may share its process with others) that also "
            "reads the beat stream with its durable pull consumer, acks what it "
            "stored and publishes the log's head.",
            {
                "publish": {
                    "allow": [
                        *mesh,
                        f"{p}.ledger.head",
                        f"{js}.STREAM.INFO.{s}",
                        f"{js}.STREAM.CREATE.{s}",
                        f"{js}.CONSUMER.INFO.{s}.{d}",
                        f"{js}.CONSUMER.DELETE.{s}.{d}",
                        # nats-py creates the consumer on ...CREATE.<stream>.<durable>.<filter>;
                        # older clients and servers use the other two forms.
                        f"{js}.CONSUMER.CREATE.{s}.{d}.>",
                        f"{js}.CONSUMER.CREATE.{s}.{d}",
                        f"{js}.CONSUMER.DURABLE.CREATE.{s}.{d}",
                        f"{js}.CONSUMER.MSG.NEXT.{s}.{d}",
                        f"$JS.ACK.{s}.{d}.>",
                    ]
                },
                "subscribe": {"allow": [f"{p}.pulse", f"{p}.mesh.>", "$SRV.>", "_INBOX.>"]},
                "allow_responses": RESPONSES,
            },
        ),
        (
            "inspector",
            f"Read-only: subscribe to everything venom says; publish only requests that "
            f"change nothing ({p}.ctl.status, NATS micro discovery, JetStream info, a "
            f"record of the beat stream). Not {p}.pulse, not {p}.beat, not "
            f"{p}.ctl.pause/resume/weights.",
            {
                "publish": {
                    "allow": [
                        f"{p}.ctl.status",
                        f"{p}.ctl.*.status",
                        "$SRV.PING",
                        "$SRV.PING.>",
                        "$SRV.INFO",
                        "$SRV.INFO.>",
                        "$SRV.STATS",
                        "$SRV.STATS.>",
                        f"{js}.INFO",
                        f"{js}.STREAM.NAMES",
                        f"{js}.STREAM.LIST",
                        f"{js}.STREAM.INFO.*",
                        f"{js}.STREAM.MSG.GET.{s}",
                        f"{js}.CONSUMER.NAMES.*",
                        f"{js}.CONSUMER.LIST.*",
                        f"{js}.CONSUMER.INFO.*.*",
                    ]
                },
                "subscribe": {"allow": [f"{p}.>", "$SRV.>", "_INBOX.>"]},
            },
        ),
        (
            "admin",
            "The operator's nats CLI: everything in the account. Keep it off venom's hosts.",
            {},
        ),
    ]


def accounts_tree(names: Names, passwords: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``accounts`` block as data (the NATS chart's values hold the same)."""
    users = []
    for user, _, permissions in account_users(names):
        password = passwords[user] if passwords is not None else password_variable(user)
        entry: dict[str, Any] = {"user": Bare(user), "password": password}
        if permissions:
            entry["permissions"] = permissions
        users.append(entry)
    return {"VENOM": {"jetstream": Bare("enabled"), "users": users}}


_WIDTH = 96


def _scalar(value: Any) -> str:
    if isinstance(value, Variable | Bare):
        return str(value)
    return json.dumps(value)


def _value(value: Any, indent: int) -> str:
    """``value`` in nats-server's config syntax, starting at column ``indent``."""
    pad = " " * indent
    if isinstance(value, dict):
        items = [f"{k}: {_value(v, indent + 2)}" for k, v in value.items()]
        inline = "{ " + ", ".join(items) + " }"
        if "\n" not in inline and indent + len(inline) < _WIDTH:
            return inline
        return "{\n" + "".join(f"{pad}  {i}\n" for i in items) + f"{pad}}}"
    if isinstance(value, list):
        words = [_scalar(v) for v in value]
        if indent + sum(len(w) + 2 for w in words) < _WIDTH - 12:
            return "[" + ", ".join(words) + "]"
        lines, line = [], ""
        for word in words:
            if line and indent + 2 + len(line) + len(word) + 2 > _WIDTH:
                lines.append(line)
                line = ""
            line = f"{line} {word}," if line else f"{word},"
        lines.append(line.rstrip(","))
        return "[\n" + "".join(f"{pad}  {x}\n" for x in lines) + f"{pad}]"
    return _scalar(value)


def render_accounts(names: Names | None = None, passwords: dict[str, str] | None = None) -> str:
    """The ``accounts { ... }`` block in nats-server's config syntax, a comment per user."""
    names = names or Names()
    tree = accounts_tree(names, passwords)
    why = {user: text for user, text, _ in account_users(names)}
    lines = ["accounts {", "  VENOM {", "    jetstream: enabled", "    users: ["]
    for entry in tree["VENOM"]["users"]:
        lines += _comment(why[entry["user"]], "      ")
        lines.append("      " + _value(entry, 6))
    lines += ["    ]", "  }", "}", ""]
    return "\n".join(lines)


def _comment(text: str, pad: str, width: int = 84) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(pad) + 2 + len(line) + 1 + len(word) > width:
            out.append(f"{pad}# {line}")
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*out, f"{pad}# {line}"] if line else out


FILE_HEADER = """\
# Accounts, users and permissions of a venom deployment (SPEC 5.1 subjects,
# prefix "venom"). Included by single.conf and cluster.conf.
# Generated: python -m venom.daemon.bus.accounts > ops/nats/accounts.conf
# (daemon/bus/accounts.py holds the table; `venom run`'s embedded server uses it too).
#
# No secret is written here: every password is an environment variable of
# the nats-server process (not of venom), which refuses to start while one is unset:
#   NATS_PASSWORD_ARBITER    user "arbiter":   `venom run` with [plugins] run = []
#   NATS_PASSWORD_PLUGIN     user "plugin":    `venom plugin run NAME...` (not the ledger)
#   NATS_PASSWORD_LEDGER     user "ledger":    `venom plugin run ledger [NAME...]`
#   NATS_PASSWORD_INSPECTOR  user "inspector": read-only: `venom status`, `nats sub`, `nats micro`
#   NATS_PASSWORD_ADMIN      user "admin":     the nats CLI (the stream at 3 replicas, ...)
# (Not VENOM_*: venom reads VENOM_<SECTION>_<KEY> as its own config.)
# Each venom process gets its user as VENOM_NATS_USER / VENOM_NATS_PASSWORD.
# Use passwords of letters, digits, "-" and "_" that start with a letter
# (e.g. "v" + `openssl rand -hex 24`): nats-server parses a variable's value as
# a config value and refuses to start on one that reads as a number, a boolean
# or has a space in it.
#
# "allow_responses" lets a user publish the replies to the requests it received,
# to the request's reply subject only. One connection hosts several plugins
# (one queue group and one NATS micro service each), so one pulse or $SRV
# request is answered up to once per plugin: max 64 replies, for 5 s.
# (With the default, one reply per request, all but one plugin of a process
# get a permission violation.)
# The names below assume nats.prefix = "venom", the stream VENOM_BEATS and the
# ledger's durable consumer "venom-ledger" (plugins.settings.ledger.durable).
# The users share one account, so whoever may subscribe to _INBOX.> (the
# arbiter, the ledger, the inspector) can read replies meant for the others:
# venom has no per-user inbox prefix yet.

"""


def accounts_file() -> str:
    """What ``ops/nats/accounts.conf`` holds."""
    return FILE_HEADER + render_accounts()


if __name__ == "__main__":
    sys.stdout.write(accounts_file())
