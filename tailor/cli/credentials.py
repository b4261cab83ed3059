"""The access key the CLI signs its server calls with, saved by ``tailor keys create``.

``tailor keys create`` prints a key once; a newcomer's next command (``tailor jobs list``) would
otherwise fail with botocore's "Unable to locate credentials". So the key is also saved in
``$TAILOR_HOME/cli-credentials.json`` (mode 0600, like ``server.key`` beside it), and the CLI uses
it unless the environment names a key itself. The file holds one key: the last one created with
saving on, so a person can tell which principal the CLI acts as (``tailor keys list`` marks it).

Where a server call's credentials come from, first match wins:
1. ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``;
2. ``AWS_PROFILE`` (a profile of ``~/.aws/credentials``);
3. the saved key.
The default AWS profile is *not* consulted: it usually holds real AWS keys, which Tailor refuses.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tailor.errors import InvalidInput

CREDENTIALS_FILE = "cli-credentials.json"
LOCAL_PRINCIPAL = "local"  # whom `tailor serve --insecure-local` acts for when a request names nobody


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    principal: str | None = None  # known for a saved key
    source: str = ""  # where they came from, for messages


def credentials_path(home: Path) -> Path:
    return Path(home) / CREDENTIALS_FILE


def save_key(home: Path, access_key_id: str, secret_access_key: str, principal: str) -> Path:
    """Save the CLI's key, replacing any saved before; the file is written whole (a temporary
    file renamed into place) and readable by its owner only."""
    path = credentials_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            json.dump({"access_key_id": access_key_id, "secret_access_key": secret_access_key,
                       "principal": principal}, file)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def saved_key(home: Path) -> Credentials | None:
    """The saved key, or None when there is none. A damaged file is reported, not ignored: the
    CLI would otherwise act as nobody without saying why."""
    path = credentials_path(home)
    try:
        values = json.loads(path.read_text())
        return Credentials(values["access_key_id"], values["secret_access_key"], values.get("principal"),
                           source=str(path))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"{path} is not a saved key; delete it and run `tailor keys create` again.") from None


def forget_keys(home: Path, access_key_ids: set[str]) -> bool:
    """Delete the saved key if it is one of ``access_key_ids`` (they were revoked); True if it was."""
    saved = saved_key(home)
    if saved is None or saved.access_key_id not in access_key_ids:
        return False
    credentials_path(home).unlink(missing_ok=True)
    return True


def default_principal(home: Path) -> str:
    """Whose custom models a local command (``generate``, ``eval compare``) means by a name when
    ``--principal`` is not given: the saved key's principal, else ``local``."""
    saved = saved_key(home)
    return saved.principal if saved and saved.principal else LOCAL_PRINCIPAL


def find_credentials(home: Path) -> Credentials:
    """The key for server calls (the order is in this module's docstring); ``InvalidInput`` saying
    what to do when there is none."""
    key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key_id and secret:
        return Credentials(key_id, secret, source="AWS_ACCESS_KEY_ID")
    if profile := os.environ.get("AWS_PROFILE"):
        import boto3
        from botocore.exceptions import BotoCoreError

        try:
            found = boto3.Session(profile_name=profile).get_credentials()
        except BotoCoreError as error:
            raise InvalidInput(f"AWS_PROFILE={profile}: {error}") from None
        if found is None:
            raise InvalidInput(f"AWS_PROFILE={profile} holds no access key.")
        return Credentials(found.access_key, found.secret_key, source=f"AWS_PROFILE={profile}")
    if saved := saved_key(home):
        return saved
    raise InvalidInput(
        "No access key for the Tailor server. Run `tailor keys create --principal NAME` on the server's machine "
        f"(with the same TAILOR_HOME, {home}): the CLI saves the key it prints and uses it. Or set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a key `tailor keys create` printed.")
