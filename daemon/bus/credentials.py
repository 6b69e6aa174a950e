"""The embedded server's users: passwords made at first start, its config file.

``venom run`` without a URL makes a password per user of
:data:`~venom.daemon.bus.accounts.USERS` and keeps them in
``<state>/nats-credentials.json`` (mode 0600, :func:`load_credentials`),
and starts its server with ``<state>/nats-server.conf``
(:func:`write_server_config`): the accounts of
:mod:`venom.daemon.bus.accounts` with those passwords, and a client
without credentials is the read-only ``inspector`` (``no_auth_user``), so
``nats sub 'venom.>'`` and ``venom status`` need no set-up but cannot
publish a beat, a pulse or a control request.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from pathlib import Path

from venom.daemon.bus.accounts import USERS, Names, render_accounts
from venom.schemas import ServerError

log = logging.getLogger("venom.embedded")

CREDENTIALS_NAME = "nats-credentials.json"
SERVER_CONF_NAME = "nats-server.conf"


def _new_credentials() -> dict[str, str]:
    # A letter first: nats-server reads a value that looks like a number as one.
    return {user: "v" + secrets.token_hex(24) for user in USERS}


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_credentials(state_dir: Path, *, create: bool = False) -> dict[str, str]:
    """The embedded server's passwords from ``<state>/nats-credentials.json``.

    With ``create``, missing, unreadable or incomplete ones are made anew,
    and so are ones that others than the owner may read (they are no
    secret any more; a warning says so). Without ``create`` a missing file
    raises :class:`ServerError`.
    """
    path = Path(state_dir) / CREDENTIALS_NAME
    try:
        mode = path.stat().st_mode
        found = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        if not create:
            raise ServerError(
                f"cannot read the embedded server's credentials {path}: {exc}"
            ) from exc
        found = None
    else:
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            if not create:
                raise ServerError(f"{path} is readable by others (mode {mode & 0o777:o})")
            log.warning("%s was readable by others: new credentials made", path)
            found = None
    if isinstance(found, dict) and all(isinstance(found.get(u), str) for u in USERS):
        return {u: str(found[u]) for u in USERS}
    if not create:
        raise ServerError(f"{path} does not hold a password for each of {', '.join(USERS)}")
    credentials = _new_credentials()
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(path, json.dumps(credentials, indent=2) + "\n")
    return credentials


def write_server_config(state_dir: Path, names: Names, credentials: dict[str, str]) -> Path:
    """``<state>/nats-server.conf`` (mode 0600): the accounts, no_auth_user the inspector."""
    path = Path(state_dir) / SERVER_CONF_NAME
    text = (
        "# Written by `venom run` at each start: its embedded server's accounts\n"
        "# (daemon/bus/accounts.py); the passwords are in nats-credentials.json.\n"
        "# A client without credentials is the read-only inspector.\n"
        "no_auth_user: inspector\n\n" + render_accounts(names, credentials)
    )
    _write_private(path, text)
    return path


def login_for(plugin_names: list[str]) -> str:
    """The user a process hosting these plugins (by class name) logs in as."""
    return "ledger" if "ledger" in plugin_names else "plugin"
