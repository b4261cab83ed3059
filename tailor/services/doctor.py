"""``tailor doctor``: what is wrong with this installation's state, in words an operator can act on.

Each check returns a ``Finding``: ``ok``, a ``warning`` (works, but should be fixed) or a
``problem`` (something will fail). Nothing here changes anything; the messages say what to do.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tailor.errors import TailorError

Status = Literal["ok", "warning", "problem"]
STATE_FOLDERS = ("jobs", "evaluations", "buckets", "run", "models")
LOW_DISK_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class Finding:
    status: Status
    check: str
    detail: str


def examine(settings) -> list[Finding]:
    """Every check, in the order an operator would fix things."""
    findings = [_home(settings.home), _server_key(settings.home)]
    store, database = _database(settings)
    findings.append(database)
    if store is not None:
        findings += [_keys(store, settings), _unowned_buckets(store, settings), _leftovers(store)]
    findings += [_writable(settings.home / name) for name in STATE_FOLDERS]
    findings += [_sandbox(), _disk(settings.home)]
    return findings


def _home(home: Path) -> Finding:
    if not home.is_dir():
        return Finding("warning", "home", f"{home} does not exist yet; the first command creates it.")
    mode = home.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding("warning", "home", f"{home} is open to other accounts (mode {mode:o}); `chmod 700 {home}`.")
    return Finding("ok", "home", str(home))


def _server_key(home: Path) -> Finding:
    from cryptography.fernet import Fernet

    path = home / "server.key"
    if not path.exists():
        return Finding("ok", "server key", "none yet (made with the first access key)")
    try:
        Fernet(path.read_bytes().strip())
    except (ValueError, OSError) as error:
        return Finding("problem", "server key", f"{path} is not a usable key ({error}); restore it from a backup.")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding("warning", "server key", f"{path} is readable by others (mode {mode:o}); `chmod 600 {path}`.")
    return Finding("ok", "server key", f"{path} (mode 600)")


def _database(settings):
    from tailor.store.db import check_integrity, open_store

    try:
        store = open_store(settings)
    except TailorError as error:
        return None, Finding("problem", "database", error.message)
    damage = check_integrity(store, thorough=True)
    if damage:
        shown = "; ".join(damage[:5]) + (f"; and {len(damage) - 5} more" if len(damage) > 5 else "")
        return None, Finding("problem", "database", f"damaged: {shown}. Restore it from a backup.")
    return store, Finding("ok", "database", "readable, migrated, integrity check passed")


def _keys(store, settings) -> Finding:
    from tailor.services.keys import unreadable_keys

    unreadable, total = unreadable_keys(store, settings)
    if not total:
        return Finding("ok", "access keys", "none yet (`tailor keys create --principal NAME`)")
    if unreadable:
        return Finding("problem", "access keys", f"{unreadable} of {total} secrets cannot be decrypted with "
                       "this server.key: was the key file replaced?")
    return Finding("ok", "access keys", f"{total} readable")


def _unowned_buckets(store, settings) -> Finding:
    from tailor.services.buckets import list_buckets

    folder = settings.home / "buckets"
    owned = {row["name"] for row in list_buckets(store)}
    unowned = sorted(path.name for path in folder.iterdir() if path.is_dir() and path.name not in owned) \
        if folder.is_dir() else []
    if unowned:
        return Finding("warning", "buckets", f"{len(unowned)} local bucket(s) belong to no principal, so the API "
                       f"refuses them: {', '.join(unowned[:10])}. Give each to its owner: "
                       "`tailor buckets create NAME --owner PRINCIPAL`.")
    return Finding("ok", "buckets", f"{len(owned)} registered")


def _leftovers(store) -> Finding:
    from tailor.jobs.runner import ended_leftovers

    found = ended_leftovers(store)
    size = sum(f.stat().st_size for path in found for f in path.rglob("*") if f.is_file())
    if found:
        return Finding("warning", "scratch", f"{len(found)} leftover folder(s) of ended jobs ({size / 1e6:.1f} MB); "
                       "the server removes them when it starts.")
    return Finding("ok", "scratch", "no leftovers of ended jobs")


def _writable(folder: Path) -> Finding:
    target = folder if folder.exists() else folder.parent
    if target.exists() and not os.access(target, os.W_OK | os.X_OK):
        return Finding("problem", f"folder {folder.name}", f"{target} is not writable by this account; jobs that "
                       "need it will fail.")
    return Finding("ok", f"folder {folder.name}", "writable")


def _sandbox() -> Finding:
    from tailor.graders.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem:
        return Finding("warning", "grader sandbox", f"{problem} Code graders are refused until it is fixed.")
    return Finding("ok", "grader sandbox", "bubblewrap works: code graders run confined")


def _disk(home: Path) -> Finding:
    existing = home if home.exists() else home.parent
    free = shutil.disk_usage(existing).free
    if free < LOW_DISK_BYTES:
        return Finding("warning", "disk", f"only {free / 1024**3:.1f} GiB free under {existing}.")
    return Finding("ok", "disk", f"{free / 1024**3:.0f} GiB free")
