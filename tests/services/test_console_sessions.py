"""Console session tokens: what opens a session and what does not."""

from __future__ import annotations

import json
import time

from tailor.secrets import derived_key, load_or_create_server_key
from tailor.services.console_sessions import Sessions
from tailor.services.keys import create_key, revoke_keys, secret_lookup
from tailor.settings import Settings
from tailor.store.db import open_store


def sessions(home, **settings) -> tuple[Sessions, Settings]:
    config = Settings(home=home, **settings)
    store = open_store(config)
    return Sessions(store, config), config


def test_a_signed_in_session_names_the_key_owner_until_the_key_is_revoked(home):
    keeper, settings = sessions(home)
    key_id, secret = create_key(keeper.store, settings, "alice")
    token = keeper.sign_in(keeper_secret_for(keeper, settings), key_id, secret)
    session = keeper.session_of(token, allow_local=False)
    assert (session.principal, session.access_key_id) == ("alice", key_id)
    assert session.csrf == keeper.session_of(token, allow_local=False).csrf  # stable for the token
    assert session.csrf != keeper.session_of(keeper.sign_in(keeper_secret_for(keeper, settings), key_id, secret),
                                             allow_local=False).csrf  # fresh per sign-in
    assert secret not in token and "alice" not in token  # encrypted, not merely signed
    revoke_keys(keeper.store, key_id)
    assert keeper.session_of(token, allow_local=False) is None


def keeper_secret_for(keeper, settings):
    return secret_lookup(keeper.store, settings)


def test_expired_forged_and_foreign_tokens_open_nothing(home, tmp_path):
    keeper, settings = sessions(home, console_session_hours=1)
    key_id, secret = create_key(keeper.store, settings, "alice")
    claims = json.dumps({"k": key_id, "n": "nonce", "t": 0}).encode()
    assert keeper.session_of(keeper.fernet.encrypt_at_time(claims, int(time.time()) - 3601).decode(), allow_local=False) is None
    assert keeper.session_of(keeper.fernet.encrypt_at_time(claims, int(time.time()) - 60).decode(), allow_local=False)
    assert keeper.session_of("not a token", allow_local=False) is None
    assert keeper.session_of("ünïcode", allow_local=False) is None
    other, _ = sessions(tmp_path / "other-home")  # another server's key
    assert keeper.session_of(other.fernet.encrypt(claims).decode(), allow_local=False) is None


def test_local_sessions_only_where_the_server_allows_them(home):
    keeper, _ = sessions(home)
    token = keeper.local()
    assert keeper.session_of(token, allow_local=True).principal == "local"
    assert keeper.session_of(token, allow_local=False) is None


def test_the_session_key_is_not_the_server_key(home):
    server_key = load_or_create_server_key(home)
    assert derived_key(server_key, "console-session") != server_key
    assert derived_key(server_key, "console-session") != derived_key(server_key, "another-purpose")
