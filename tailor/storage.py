"""Artifacts addressed by URI: plain paths, ``file://`` URIs and ``s3://`` URIs.

With no S3 service configured, ``s3://BUCKET/KEY`` is a *local bucket*:
``$TAILOR_HOME/buckets/BUCKET/KEY``. Scripts written for the original service keep their
``s3://`` URIs and work unchanged on one machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from tailor.errors import InvalidInput, NotFound
from tailor.settings import Settings, get_settings


def local_path(uri: str, settings: Settings | None = None) -> Path:
    """The local file a URI names (for s3://, the file inside the local bucket)."""
    settings = settings or get_settings()
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return Path(path).expanduser()
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise InvalidInput(f"{uri!r} names no bucket: expected s3://BUCKET/KEY.")
        return settings.home / "buckets" / parsed.netloc / parsed.path.lstrip("/")
    raise InvalidInput(f"Unsupported URI scheme in {uri!r}: use a path, file:// or s3://.")


def read_bytes(uri: str, settings: Settings | None = None) -> bytes:
    path = local_path(uri, settings)
    if not path.is_file():
        raise NotFound(f"No file at {uri}" + (f" ({path})" if str(path) != uri else "") + ".")
    return path.read_bytes()


def size(uri: str, settings: Settings | None = None) -> int:
    path = local_path(uri, settings)
    if not path.is_file():
        raise NotFound(f"No file at {uri}" + (f" ({path})" if str(path) != uri else "") + ".")
    return path.stat().st_size


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see either the old content or the whole new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def copy_tree(source: Path, uri: str, settings: Settings | None = None) -> Path:
    """Copy a local folder to the location a URI names; returns the local destination."""
    destination = local_path(uri, settings)
    shutil.copytree(source, destination, dirs_exist_ok=True)
    return destination
