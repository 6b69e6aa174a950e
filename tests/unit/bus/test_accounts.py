"""The NATS users table (daemon/bus/accounts.py), the files made from it, the credentials."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from venom.daemon.bus.accounts import USERS, Names, accounts_file, accounts_tree, render_accounts
from venom.daemon.bus.credentials import (
    CREDENTIALS_NAME,
    load_credentials,
    login_for,
    write_server_config,
)
from venom.schemas import ServerError, Subjects

REPO = Path(__file__).resolve().parents[3]


def test_shipped_accounts_conf_is_the_rendered_table() -> None:
    # Regenerate with: python -m venom.daemon.bus.accounts > ops/nats/accounts.conf
    assert (REPO / "ops" / "nats" / "accounts.conf").read_text() == accounts_file()


def test_chart_values_hold_the_same_users() -> None:
    values = yaml.safe_load((REPO / "ops" / "k8s" / "nats-values.yaml").read_text())
    chart = values["config"]["merge"]["accounts"]
    passwords = {u: f"<< $NATS_PASSWORD_{u.upper()} >>" for u in USERS}
    expected = accounts_tree(Names(), passwords)
    assert json.loads(json.dumps(chart)) == json.loads(json.dumps(expected))


def test_names_follow_the_prefix() -> None:
    names = Names.of(Subjects("plant-a"))
    assert (names.stream, names.bucket) == ("PLANT_A_BEATS", "PLANT_A_HA")
    text = render_accounts(names, dict.fromkeys(USERS, "v1"))
    assert '"plant-a.beat"' in text
    assert "venom." not in text
    assert "$NATS_PASSWORD" not in text


def test_credentials_are_made_once_private(tmp_path: Path) -> None:
    made = load_credentials(tmp_path, create=True)
    path = tmp_path / CREDENTIALS_NAME
    assert set(made) == set(USERS)
    assert all(p[0].isalpha() and len(p) == 49 for p in made.values())
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_credentials(tmp_path) == made == load_credentials(tmp_path, create=True)


def test_credentials_others_could_read_are_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    made = load_credentials(tmp_path, create=True)
    path = tmp_path / CREDENTIALS_NAME
    os.chmod(path, 0o644)
    with pytest.raises(ServerError, match="readable by others"):
        load_credentials(tmp_path)
    with caplog.at_level(logging.WARNING):
        again = load_credentials(tmp_path, create=True)
    assert again != made
    assert "readable by others" in caplog.text
    assert path.stat().st_mode & 0o777 == 0o600


def test_missing_or_broken_credentials_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match=CREDENTIALS_NAME):
        load_credentials(tmp_path)
    (tmp_path / CREDENTIALS_NAME).write_text('{"arbiter": "v1"}')
    os.chmod(tmp_path / CREDENTIALS_NAME, 0o600)
    with pytest.raises(ServerError, match="a password for each"):
        load_credentials(tmp_path)
    assert set(load_credentials(tmp_path, create=True)) == set(USERS)


def test_server_config_is_private_and_maps_strangers_to_the_inspector(tmp_path: Path) -> None:
    credentials = load_credentials(tmp_path, create=True)
    conf = write_server_config(tmp_path, Names(durable="*"), credentials)
    text = conf.read_text()
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "no_auth_user: inspector" in text
    assert all(json.dumps(p) in text for p in credentials.values())
    assert '"$JS.ACK.VENOM_BEATS.*.>"' in text


def test_login_for_the_group_that_holds_the_ledger() -> None:
    assert login_for(["kalman", "ledger", "thermal"]) == "ledger"
    assert login_for(["kalman", "thermal"]) == "plugin"
