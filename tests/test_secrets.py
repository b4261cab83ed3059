"""Access keys and the server key that encrypts their secrets at rest."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from tailor.errors import AccessDenied, InvalidInput
from tailor.secrets import (
    decrypt_secret,
    encrypt_secret,
    load_or_create_server_key,
    new_access_key,
)


def test_new_access_key_has_the_aws_shape_with_its_own_prefix():
    key_id, secret = new_access_key()
    assert re.fullmatch(r"TKIA[A-Z0-9]{16}", key_id)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret)
    assert new_access_key() != (key_id, secret)


def test_round_trip(tmp_path: Path):
    server_key = load_or_create_server_key(tmp_path)
    _, secret = new_access_key()
    token = encrypt_secret(server_key, secret)
    assert decrypt_secret(server_key, token) == secret
    assert secret not in token


def test_server_key_file_is_created_once_with_mode_0600(tmp_path: Path):
    home = tmp_path / "fresh-home"
    key = load_or_create_server_key(home)
    path = home / "server.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_server_key(home) == key  # loaded, not replaced
    assert [entry.name for entry in home.iterdir()] == ["server.key"]  # no temporary left over


def test_two_homes_get_different_keys(tmp_path: Path):
    assert load_or_create_server_key(tmp_path / "a") != load_or_create_server_key(tmp_path / "b")


def test_key_file_with_broader_permissions_is_still_loaded(tmp_path: Path):
    key = load_or_create_server_key(tmp_path)
    (tmp_path / "server.key").chmod(0o644)
    assert load_or_create_server_key(tmp_path) == key


def test_malformed_key_file_is_reported(tmp_path: Path):
    (tmp_path / "server.key").write_text("not a key\n")
    with pytest.raises(InvalidInput, match="server.key is not a valid server key"):
        load_or_create_server_key(tmp_path)


def test_decrypting_with_another_server_key_fails_clearly(tmp_path: Path):
    token = encrypt_secret(load_or_create_server_key(tmp_path / "a"), "the-secret")
    with pytest.raises(AccessDenied, match="key store does not match the server key") as caught:
        decrypt_secret(load_or_create_server_key(tmp_path / "b"), token)
    assert "the-secret" not in caught.value.message
