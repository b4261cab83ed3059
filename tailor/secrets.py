"""Access keys for the API, and the server key that keeps their secrets encrypted at rest.

SigV4 verification recomputes an HMAC keyed by the client's secret, so the server must be able to
recover every secret: a one-way hash would not do. Secrets are therefore stored encrypted with a
Fernet key (AES-128-CBC + HMAC-SHA256) kept in ``$TAILOR_HOME/server.key``. Losing that file
makes every stored secret unreadable; copying it together with the database restores them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import string
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from tailor.errors import AccessDenied, InvalidInput

log = logging.getLogger(__name__)

# "TKIA" mirrors AWS's "AKIA" shape without ever being mistaken for a real AWS key.
ACCESS_KEY_PREFIX = "TKIA"
_KEY_ID_ALPHABET = string.ascii_uppercase + string.digits
# Letters and digits only, so a secret survives shells, URLs and config files unquoted.
_SECRET_ALPHABET = string.ascii_letters + string.digits
SERVER_KEY_FILE = "server.key"


def new_access_key() -> tuple[str, str]:
    """A fresh (access key id, secret access key): ``TKIA`` + 16 characters, and 40 characters."""
    key_id = ACCESS_KEY_PREFIX + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return key_id, secret


def load_or_create_server_key(home: Path) -> bytes:
    """The Fernet key in ``home / "server.key"``, created with mode 0600 the first time.

    Creation is atomic and never overwrites: the key is written to a private temporary file and
    hard-linked into place, so a concurrent process either wins and we load its key, or sees a
    complete file. A key file with broader permissions than 0600 is still loaded (refusing would
    lock the owner out of their own keys) but a warning is logged. Raises ``InvalidInput`` when
    the file is not a Fernet key.
    """
    path = Path(home) / SERVER_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create_exclusively(path, Fernet.generate_key())
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); it should be 0600", path, mode)
    key = path.read_bytes().strip()
    try:
        Fernet(key)
    except ValueError:
        raise InvalidInput(
            f"{path} is not a valid server key (expected 32 url-safe base64-encoded bytes). "
            "Restore it from a backup; replacing it makes the stored secret keys unreadable."
        ) from None
    return key


def derived_key(server_key: bytes, purpose: str) -> bytes:
    """A Fernet key for one ``purpose`` (``"console-session"``), derived from the server key by
    HMAC-SHA256, so a token made for one purpose never opens another and the key that encrypts
    the stored secrets never signs anything a browser holds."""
    digest = hmac.new(server_key, b"tailor:" + purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest)


def encrypt_secret(server_key: bytes, secret: str) -> str:
    """An opaque token holding ``secret``, readable only with ``server_key``."""
    return Fernet(server_key).encrypt(secret.encode()).decode("ascii")


def decrypt_secret(server_key: bytes, token: str) -> str:
    """The secret inside ``token``; ``AccessDenied`` if this server key did not encrypt it."""
    try:
        return Fernet(server_key).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise AccessDenied(
            "The key store does not match the server key: a stored secret cannot be decrypted "
            "with this server.key (was the key file replaced, or the database copied without it?)."
        ) from None


def _create_exclusively(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` with mode 0600 unless the file already exists."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it first; its key is the one to use
    finally:
        temporary.unlink(missing_ok=True)
