"""Console sessions: who a browser is signed in as, kept in an encrypted cookie, and the CSRF token
that goes with it.

A session is opened by signing in with an access key pair (checked exactly as a bearer API key
is), or, under ``--insecure-local``, handed to a loopback visitor as the principal ``local``.
The token is a Fernet token (encrypted and authenticated, with its issue time) under a key derived
from the server key for this purpose only; it names the access key, not the principal, and every
request looks the key up again — so ``tailor keys revoke`` ends the key's sessions at once, as it
ends its API calls. Tokens need no table: a session ends when it expires
(``console_session_hours``), when its key is revoked, or when the browser drops the cookie.

Every state-changing console request carries ``csrf`` (a form field or a header): an HMAC of the
session's random nonce, which a page of another site cannot read or guess.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken

from tailor.errors import AccessDenied
from tailor.secrets import derived_key, load_or_create_server_key
from tailor.services.keys import bearer_principal, principal_of
from tailor.settings import Settings
from tailor.store.db import Store

PURPOSE = "console-session"
LOCAL_PRINCIPAL = "local"


@dataclass(frozen=True)
class ConsoleSession:
    principal: str
    access_key_id: str | None  # None: an --insecure-local session
    csrf: str


class Sessions:
    """Issues and checks one server's console tokens (its key derived once, at start)."""

    def __init__(self, store: Store, settings: Settings):
        self.store = store
        self.key = derived_key(load_or_create_server_key(settings.home), PURPOSE)
        self.fernet = Fernet(self.key)
        self.ttl = int(settings.console_session_hours * 3600)

    def sign_in(self, secret_for: Callable[[str], str | None], access_key_id: str, secret: str) -> str:
        """A token for the key pair; ``AccessDenied`` when it is not a valid key (one message for all)."""
        bearer_principal(self.store, secret_for, f"{access_key_id}.{secret}")
        return self._issue({"k": access_key_id})

    def local(self) -> str:
        """A token for the ``--insecure-local`` principal (accepted only by a server in that mode)."""
        return self._issue({"local": True})

    def session_of(self, token: str, *, allow_local: bool) -> ConsoleSession | None:
        """The live session ``token`` opens, or None (forged, expired, revoked key, wrong mode)."""
        try:
            claims = json.loads(self.fernet.decrypt(token.encode("ascii"), ttl=self.ttl))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            return None
        csrf = self._csrf(str(claims.get("n", "")))
        if claims.get("local"):
            return ConsoleSession(LOCAL_PRINCIPAL, None, csrf) if allow_local else None
        access_key_id = claims.get("k")
        principal = principal_of(self.store, access_key_id) if isinstance(access_key_id, str) else None
        return ConsoleSession(principal, access_key_id, csrf) if principal else None

    def check_csrf(self, session: ConsoleSession, sent: str | None) -> None:
        if not sent or not hmac.compare_digest(session.csrf.encode(), sent.encode("utf-8", "replace")):
            raise AccessDenied("This form has expired or did not come from the console: reload the page and "
                               "try again.")

    def _issue(self, claims: dict) -> str:
        claims = {**claims, "n": secrets.token_urlsafe(16), "t": int(time.time())}
        return self.fernet.encrypt(json.dumps(claims).encode()).decode("ascii")

    def _csrf(self, nonce: str) -> str:
        return hmac.new(self.key, b"csrf:" + nonce.encode(), hashlib.sha256).hexdigest()[:32]
