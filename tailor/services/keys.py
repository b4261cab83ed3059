"""Access keys: created here, stored encrypted, looked up when a request's signature is checked,
listed and revoked by the operator (``tailor keys create|list|revoke``).

The same key also works as a bearer API key (OpenAI clients, Bedrock API-key clients): the access
key id and the secret joined by a dot, ``TKIA....SECRET``. Revoking deletes the key's row: the
server looks every key up per request, so the next request signed with it is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from tailor.errors import AccessDenied, NotFound
from tailor.secrets import (
    decrypt_secret,
    encrypt_secret,
    load_or_create_server_key,
    new_access_key,
)
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.keys import AccessKey


def create_key(store: Store, settings: Settings, principal: str) -> tuple[str, str]:
    """A new key pair for ``principal``; the secret is shown once and stored only encrypted."""
    access_key_id, secret = new_access_key()
    server_key = load_or_create_server_key(settings.home)
    with store.session() as session:
        session.add(AccessKey(access_key_id=access_key_id, encrypted_secret=encrypt_secret(server_key, secret),
                              principal=principal, created_at=utcnow()))
    return access_key_id, secret


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key: never its secret."""

    access_key_id: str
    principal: str
    created_at: datetime


def list_keys(store: Store) -> list[KeyInfo]:
    """Every access key, oldest first."""
    with store.session() as session:
        rows = session.scalars(select(AccessKey).order_by(AccessKey.created_at, AccessKey.access_key_id)).all()
        return [KeyInfo(row.access_key_id, row.principal, row.created_at) for row in rows]


def revoke_keys(store: Store, key_or_principal: str) -> list[KeyInfo]:
    """Delete one key (by its access key id) or every key of a principal (by its name); returns
    what was revoked. ``NotFound`` when the name is neither."""
    with store.session() as session:
        key = session.get(AccessKey, key_or_principal)
        rows = [key] if key is not None else session.scalars(
            select(AccessKey).where(AccessKey.principal == key_or_principal)
            .order_by(AccessKey.created_at, AccessKey.access_key_id)).all()
        if not rows:
            raise NotFound(f"No access key or principal named {key_or_principal!r}; "
                           "`tailor keys list` shows them.")
        revoked = [KeyInfo(row.access_key_id, row.principal, row.created_at) for row in rows]
        for row in rows:
            session.delete(row)
    return revoked


def principal_of(store: Store, access_key_id: str) -> str | None:
    with store.session() as session:
        key = session.get(AccessKey, access_key_id)
        return key.principal if key else None


def secret_lookup(store: Store, settings: Settings) -> Callable[[str], str | None]:
    server_key = load_or_create_server_key(settings.home)

    def secret_for(access_key_id: str) -> str | None:
        with store.session() as session:
            key = session.get(AccessKey, access_key_id)
            return decrypt_secret(server_key, key.encrypted_secret) if key else None

    return secret_for


def api_key(access_key_id: str, secret: str) -> str:
    """The bearer form of a key pair."""
    return f"{access_key_id}.{secret}"


def bearer_principal(store: Store, secret_for: Callable[[str], str | None], token: str) -> str:
    """The principal whose bearer API key ``token`` is; AccessDenied for anything else."""
    access_key_id, _, secret = token.partition(".")
    known = secret_for(access_key_id) if access_key_id and secret else None
    # compare_digest: the time taken must not tell how much of a guessed secret was right.
    if known is None or not hmac.compare_digest(known.encode(), secret.encode()):
        raise AccessDenied("The API key is not valid. Use the key printed by `tailor keys create`.")
    principal = principal_of(store, access_key_id)
    if principal is None:
        raise AccessDenied("The API key is not valid.")
    return principal


def unreadable_keys(store: Store, settings: Settings) -> tuple[int, int]:
    """``(keys whose secret this server.key cannot decrypt, all keys)``: a replaced key file shows here."""
    with store.session() as session:
        tokens = session.scalars(select(AccessKey.encrypted_secret)).all()
    if not tokens:
        return 0, 0
    server_key = load_or_create_server_key(settings.home)
    unreadable = 0
    for token in tokens:
        try:
            decrypt_secret(server_key, token)
        except AccessDenied:
            unreadable += 1
    return unreadable, len(tokens)
