"""Artifacts addressed by URI: plain paths, ``file://`` URIs and ``s3://`` URIs.

``s3://BUCKET/KEY`` goes one of two ways, chosen by ``TAILOR_S3_ENDPOINT_URL``:

- **unset** (the default): a *local bucket*, ``$TAILOR_HOME/buckets/BUCKET/KEY``. Scripts written
  for the original service keep their ``s3://`` URIs and work unchanged on one machine.
- **set**: an object on that S3-compatible service (MinIO, Ceph, AWS S3 itself), through boto3.
  Credentials come from ``TAILOR_S3_ACCESS_KEY_ID``/``TAILOR_S3_SECRET_ACCESS_KEY`` when set,
  else from the standard AWS chain. Readers still get a local file: ``local_path`` downloads the
  object into ``$TAILOR_HOME/cache/s3/BUCKET/KEY`` and downloads it again only when its ETag or
  size changed.

Large objects never pass through memory whole: uploads of files from ``s3_multipart_threshold_bytes``
(8 MiB) up go in parts of ``s3_multipart_chunk_bytes`` (multipart upload, boto3's transfer manager);
downloads are copied to the cache a megabyte at a time; ``iter_lines`` reads a JSON Lines file
line by line off the response stream, for a reader that needs one pass and no local copy.

Every failure of the service (no such bucket or key, access denied, endpoint unreachable) becomes
a ``tailor.errors`` exception whose message names the URI and the endpoint. boto3 is imported
inside the functions that talk to the service: the control plane imports this module, and with
local buckets it never needs boto3.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tailor.errors import AccessDenied, InvalidInput, NotFound, TailorError
from tailor.settings import Settings, get_settings

# Error codes S3-compatible services answer with. A HEAD request has no body, so its errors carry
# only the HTTP status as their code ("404", "403").
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_DENIED_CODES = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "AllAccessDisabled",
                 "AccountProblem", "InvalidSecurity"}
_CHUNK_BYTES = 1 << 20


# ---------------------------------------------------------------------------------------------
# The public functions: each works on every kind of URI.

def local_path(uri: str, settings: Settings | None = None) -> Path:
    """A local file holding what the URI names, for reading.

    A path or ``file://`` URI is returned as is; an ``s3://`` URI names a file in its local bucket
    or, with an S3 endpoint configured, the object's copy in the download cache (downloaded first
    if missing or stale). Raises ``NotFound`` when the file, or the remote object or its bucket,
    does not exist.
    """
    settings = settings or get_settings()
    remote = _remote_object(uri, settings)
    if remote is None:
        return _existing_local_file(uri, settings)
    bucket, key = remote
    return _cached_download(uri, bucket, key, settings)


def read_bytes(uri: str, settings: Settings | None = None) -> bytes:
    """The whole content of the file or object the URI names."""
    settings = settings or get_settings()
    remote = _remote_object(uri, settings)
    if remote is None:
        return _existing_local_file(uri, settings).read_bytes()
    bucket, key = remote
    with _service_errors(uri, settings, bucket):
        response = _client(settings).get_object(Bucket=bucket, Key=key)
        return response["Body"].read()


def iter_lines(uri: str, settings: Settings | None = None) -> Iterator[bytes]:
    """The lines of the file or object the URI names, each with its ``\\n`` (the last may have
    none), read as a stream: an ``s3://`` object on the endpoint comes off the GET's response a
    megabyte at a time, so memory holds one chunk and one line, whatever the object's size.

    A generator: nothing is requested until the first line is asked for, and the errors (``NotFound``
    and the rest, as every function here raises them) come then. Closing it early (``break``)
    closes the connection's stream.
    """
    settings = settings or get_settings()
    remote = _remote_object(uri, settings)
    if remote is None:
        with _existing_local_file(uri, settings).open("rb") as file:
            yield from file
        return
    bucket, key = remote
    with _service_errors(uri, settings, bucket):
        body = _client(settings).get_object(Bucket=bucket, Key=key)["Body"]
        try:
            # Not botocore's StreamingBody.iter_lines: it also splits at "\r" (bytes.splitlines), so a
            # record would read differently from S3 than from a local file, which splits at "\n" only.
            pending = bytearray()  # the line being read, across chunk boundaries
            for chunk in body.iter_chunks(_CHUNK_BYTES):
                pending += chunk
                start = 0
                while (end := pending.find(b"\n", start)) >= 0:
                    yield bytes(pending[start:end + 1])
                    start = end + 1
                del pending[:start]
            if pending:
                yield bytes(pending)
        finally:
            body.close()


def size(uri: str, settings: Settings | None = None) -> int:
    """The size in bytes of the file or object the URI names (for s3://, without downloading it)."""
    settings = settings or get_settings()
    remote = _remote_object(uri, settings)
    if remote is None:
        return _existing_local_file(uri, settings).stat().st_size
    bucket, key = remote
    return int(_head(uri, bucket, key, settings)["ContentLength"])


def sha256_of(path: Path) -> str:
    """A file's sha256, read a megabyte at a time (training files may be gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing_local_file(uri: str, settings: Settings) -> Path:
    path = _local_file(uri, settings)
    if not path.is_file():
        raise NotFound(f"No file at {uri}.")  # never the local path: callers of the API read this
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomic(path: Path, text: str) -> None:
    """Write a file so that readers see either the old content or the whole new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def upload_file(source: Path, uri: str, settings: Settings | None = None) -> Path | str:
    """Put one local file where the URI names; returns the local destination, or the URI itself
    when it went to the S3 endpoint. A local destination is replaced atomically."""
    settings = settings or get_settings()
    source = Path(source)
    if not source.is_file():
        raise NotFound(f"No file at {source}.")
    remote = _remote_object(uri, settings)
    if remote is None:
        destination = _local_file(uri, settings)
        _copy_atomic(source, destination)
        return destination
    bucket, key = remote
    with _service_errors(uri, settings, bucket):
        _client(settings).upload_file(str(source), bucket, key, Config=_transfer_config(settings))
    return uri


def copy_tree(source: Path, uri: str, settings: Settings | None = None) -> Path | str:
    """Copy every file under a local folder to the location a URI names, keeping relative paths.

    Returns the local destination folder, or the URI itself when the files went to the S3
    endpoint (as objects ``KEY_PREFIX/RELATIVE/PATH``).
    """
    settings = settings or get_settings()
    bucket_and_prefix = _remote_prefix(uri, settings)
    if bucket_and_prefix is None:
        destination = _local_file(uri, settings)
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return destination
    bucket, prefix = bucket_and_prefix
    client, config = _client(settings), _transfer_config(settings)
    for path in sorted(p for p in Path(source).rglob("*") if p.is_file()):
        key = prefix + path.relative_to(source).as_posix()
        with _service_errors(f"s3://{bucket}/{key}", settings, bucket):
            client.upload_file(str(path), bucket, key, Config=config)
    return uri


def bucket_of(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://`` URI, refusing what could name a file outside the bucket:
    a ``.`` or ``..`` segment. The key may be empty (the whole bucket) or end in ``/`` (a folder)."""
    if urlparse(uri).scheme != "s3":
        raise InvalidInput(f"{uri!r} is not an s3:// URI.")
    bucket, key = _bucket_and_key(uri)
    _inside(Path("/"), bucket, key, uri)  # the same segment rule as local buckets
    return bucket, key


def list_objects(bucket_uri: str, settings: Settings | None = None) -> list[tuple[str, int]]:
    """``(key, size in bytes)`` of every object in the bucket an ``s3://BUCKET[/PREFIX]`` URI names,
    by key: the local bucket's files (hidden scratch files left out), or the endpoint's objects
    (``list_objects_v2``, page by page). Nothing outside the bucket is ever listed: a symlink in
    a local bucket that leads out of it is skipped."""
    settings = settings or get_settings()
    bucket, prefix = bucket_of(bucket_uri)
    if not _endpoint(settings):
        root = _inside(settings.home / "buckets", bucket, "", bucket_uri)
        if not root.is_dir():
            raise NotFound(f"No bucket {bucket}.")
        real_root = root.resolve()
        found = []
        for path in root.rglob("*"):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                continue
            if not path.resolve().is_relative_to(real_root):
                continue
            key = relative.as_posix()
            if key.startswith(prefix):
                found.append((key, path.stat().st_size))
        return sorted(found)
    found = []
    with _service_errors(bucket_uri, settings, bucket):
        pages = _client(settings).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            found += [(item["Key"], int(item["Size"])) for item in page.get("Contents", ())]
    return sorted(found)


def ensure_bucket(bucket: str, settings: Settings | None = None) -> None:
    """Make sure the bucket exists: a local bucket's folder, or the bucket on the S3 endpoint
    (created there when missing)."""
    settings = settings or get_settings()
    uri = f"s3://{bucket}/"
    if not _endpoint(settings):
        try:
            _inside(settings.home / "buckets", bucket, "", uri).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InvalidInput(f"Cannot create the local bucket {bucket}: {error.strerror or error}.") from None
        return
    if _bucket_exists(bucket, settings, strict=True):
        return
    with _service_errors(uri, settings, bucket):
        client = _client(settings)
        region = client.meta.region_name
        # Outside us-east-1, S3 wants the bucket's region named (IllegalLocationConstraintException).
        where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        client.create_bucket(Bucket=bucket, **where)


def local_bucket_exists(bucket: str, settings: Settings) -> bool:
    """Whether a local bucket of that name has a folder (with no S3 endpoint configured)."""
    return (settings.home / "buckets" / bucket).is_dir()


def check_writable(uri: str, settings: Settings | None = None) -> None:
    """Prove that files can be written under the folder a URI names, before any work is spent on
    results that would then have nowhere to go: a probe file is written and removed again.
    Raises ``InvalidInput`` (or the endpoint's ``AccessDenied``/``NotFound``) saying why not."""
    settings = settings or get_settings()
    bucket_and_prefix = _remote_prefix(uri, settings)
    if bucket_and_prefix is None:
        folder = _local_file(uri, settings)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".tailor-write-check."):
                pass
        except OSError as error:
            raise InvalidInput(f"Cannot write under {uri}: {error.strerror or error}.") from None
        return
    bucket, prefix = bucket_and_prefix
    key = f"{prefix}.tailor-write-check"
    with _service_errors(uri, settings, bucket, check_bucket=True):
        client = _client(settings)
        client.put_object(Bucket=bucket, Key=key, Body=b"")
        client.delete_object(Bucket=bucket, Key=key)


# ---------------------------------------------------------------------------------------------
# Local paths and local buckets.

def _local_file(uri: str, settings: Settings) -> Path:
    """The local file a path, ``file://`` URI or (local bucket) ``s3://`` URI names."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        return Path(path).expanduser()
    if parsed.scheme == "s3":
        bucket, key = _bucket_and_key(uri)
        return _inside(settings.home / "buckets", bucket, key, uri)
    raise InvalidInput(f"Unsupported URI scheme in {uri!r}: use a path, file:// or s3://.")


def _bucket_and_key(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if not parsed.netloc:
        raise InvalidInput(f"{uri!r} names no bucket: expected s3://BUCKET/KEY.")
    return parsed.netloc, parsed.path.lstrip("/")


def _inside(root: Path, bucket: str, key: str, uri: str) -> Path:
    """``root/bucket/key``, refusing a bucket or key that would climb out of ``root``."""
    parts = [bucket, *key.split("/")]
    if any(part in (".", "..") for part in parts):
        raise InvalidInput(f"{uri!r} has a '.' or '..' path segment; it cannot name a local file.")
    return root.joinpath(*parts)


def _copy_atomic(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------
# The S3 endpoint.

def _endpoint(settings: Settings) -> str | None:
    return settings.s3_endpoint_url or None


def _remote_object(uri: str, settings: Settings) -> tuple[str, str] | None:
    """``(bucket, key)`` when the URI names an object on the S3 endpoint, else None."""
    if not uri.startswith("s3://") or not _endpoint(settings):
        return None
    bucket, key = _bucket_and_key(uri)
    if not key or key.endswith("/"):
        raise InvalidInput(f"{uri!r} names no object: expected s3://BUCKET/KEY with a key that "
                           "does not end in '/'.")
    return bucket, key


def _remote_prefix(uri: str, settings: Settings) -> tuple[str, str] | None:
    """``(bucket, key prefix ending in '/' or empty)`` when the URI names a folder on the S3
    endpoint, else None."""
    if not uri.startswith("s3://") or not _endpoint(settings):
        return None
    bucket, key = _bucket_and_key(uri)
    key = key.rstrip("/")
    return bucket, f"{key}/" if key else ""


def _client(settings: Settings) -> Any:
    """A boto3 S3 client for the configured endpoint. Clients are cached per configuration and
    per AWS_* environment, so a changed environment is honoured as ``get_settings`` promises."""
    endpoint = _endpoint(settings)
    if not endpoint or urlparse(endpoint).scheme not in ("http", "https") or not urlparse(endpoint).netloc:
        raise InvalidInput(f"TAILOR_S3_ENDPOINT_URL must be an http:// or https:// URL, got {endpoint!r}.")
    secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
    if bool(settings.s3_access_key_id) != bool(secret):
        raise InvalidInput("Set both TAILOR_S3_ACCESS_KEY_ID and TAILOR_S3_SECRET_ACCESS_KEY, or neither "
                           "(then the standard AWS credential chain is used).")
    aws_environment = tuple(sorted((name, value) for name, value in os.environ.items()
                                   if name.startswith("AWS_")))
    from botocore.exceptions import BotoCoreError

    try:
        return _cached_client(
            endpoint, settings.s3_region, settings.s3_access_key_id or None, secret,
            settings.s3_addressing_style, settings.s3_connect_timeout_seconds,
            settings.s3_read_timeout_seconds, settings.s3_max_attempts, aws_environment,
        )
    except BotoCoreError as error:  # e.g. AWS_PROFILE names no profile, or a malformed region
        raise InvalidInput(f"Cannot set up a client for the S3 endpoint {endpoint}: {error}") from None


@functools.lru_cache(maxsize=8)
def _cached_client(endpoint: str, region: str | None, access_key_id: str | None, secret: str | None,
                   addressing_style: str, connect_timeout: float, read_timeout: float,
                   max_attempts: int, aws_environment: tuple[tuple[str, str], ...]) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret,
                                    region_name=region)
    config = Config(
        connect_timeout=connect_timeout, read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        s3={"addressing_style": addressing_style},
        # Checksums only where S3 requires them: many S3-compatible services reject the
        # trailing checksums that recent botocore sends by default.
        request_checksum_calculation="when_required", response_checksum_validation="when_required",
    )
    return session.client("s3", endpoint_url=endpoint, config=config,
                          region_name=region or session.region_name or "us-east-1")


def _transfer_config(settings: Settings) -> Any:
    """How boto3's transfer manager uploads: files from the threshold up in parts, several at once."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=settings.s3_multipart_threshold_bytes,
                          multipart_chunksize=settings.s3_multipart_chunk_bytes)


def _head(uri: str, bucket: str, key: str, settings: Settings) -> dict:
    with _service_errors(uri, settings, bucket, check_bucket=True):
        return _client(settings).head_object(Bucket=bucket, Key=key)


def _cached_download(uri: str, bucket: str, key: str, settings: Settings) -> Path:
    """The object's copy under ``$TAILOR_HOME/cache/s3``, downloaded again only when its ETag or
    size changed. A sidecar record (in ``cache/s3-meta``) notes what was downloaded and the
    local file's inode, size and mtime, so a copy that another process replaced concurrently is
    never mistaken for the object the record describes."""
    endpoint = _endpoint(settings)
    path = _inside(settings.home / "cache" / "s3", bucket, key, uri)
    record_path = _inside(settings.home / "cache" / "s3-meta", bucket, key + ".json", uri)
    head = _head(uri, bucket, key, settings)
    wanted = {"endpoint": endpoint, "etag": head.get("ETag"), "size": int(head["ContentLength"])}
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        stat = path.stat()
        if ({name: record.get(name) for name in wanted} == wanted
                and record.get("file") == [stat.st_ino, stat.st_size, stat.st_mtime_ns]):
            return path
    except (OSError, ValueError):
        pass  # no copy yet, or an unreadable record: download

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with _service_errors(uri, settings, bucket), os.fdopen(handle, "wb") as file:
            response = _client(settings).get_object(Bucket=bucket, Key=key)
            shutil.copyfileobj(response["Body"], file, _CHUNK_BYTES)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    # Describe what was downloaded (the GET's own ETag), not what HEAD saw a moment before.
    stat = path.stat()
    record = {"endpoint": endpoint, "etag": response.get("ETag"), "size": stat.st_size,
              "file": [stat.st_ino, stat.st_size, stat.st_mtime_ns]}
    write_text_atomic(record_path, json.dumps(record))
    return path


@contextmanager
def _service_errors(uri: str, settings: Settings, bucket: str, check_bucket: bool = False) -> Iterator[None]:
    """Turn boto3/botocore errors into domain errors naming the URI and the endpoint.

    With ``check_bucket`` (for HEAD requests, whose 404 cannot tell a missing key from a missing
    bucket) a 404 is followed by one HEAD of the bucket to say which is missing.
    """
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    endpoint = _endpoint(settings)
    where = f"(S3 endpoint {endpoint})"
    try:
        yield
    except TailorError:
        raise
    except (ClientError, S3UploadFailedError) as raised:
        error = raised
        if isinstance(error, S3UploadFailedError) and isinstance(error.__context__, ClientError):
            error = error.__context__  # boto3 wraps upload errors, keeping the service's in the context
        if not isinstance(error, ClientError):
            raise InvalidInput(f"S3 request for {uri} failed {where}: {error}") from None
        code = str(error.response.get("Error", {}).get("Code", ""))
        message = (error.response.get("Error", {}).get("Message") or "").rstrip(". ")  # our sentence adds the "."
        detail = f"{code}: {message}" if message else code
        if code == "NoSuchBucket" or (code in _MISSING_CODES and check_bucket
                                      and not _bucket_exists(bucket, settings)):
            raise NotFound(f"No bucket {bucket!r} for {uri} {where}.") from None
        if code in _MISSING_CODES:
            raise NotFound(f"No object at {uri} {where}.") from None
        if code in _DENIED_CODES:
            raise AccessDenied(f"Access denied to {uri} {where}: {detail}. Check the credentials "
                               "(TAILOR_S3_ACCESS_KEY_ID/TAILOR_S3_SECRET_ACCESS_KEY or the AWS "
                               "chain) and the bucket's policy.") from None
        raise InvalidInput(f"S3 request for {uri} failed {where}: {detail}.") from None
    except (NoCredentialsError, PartialCredentialsError) as error:
        raise AccessDenied(f"No credentials to access {uri} {where}: {error}. Set TAILOR_S3_ACCESS_KEY_ID "
                           "and TAILOR_S3_SECRET_ACCESS_KEY, or AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY, or an AWS profile.") from None
    except (ConnectionError, HTTPClientError) as error:
        raise InvalidInput(f"Cannot reach the S3 endpoint {endpoint} for {uri}: {error}. Check "
                           "TAILOR_S3_ENDPOINT_URL and that the service is running.") from None
    except BotoCoreError as error:
        raise InvalidInput(f"S3 request for {uri} failed {where}: {error}") from None


def _bucket_exists(bucket: str, settings: Settings, strict: bool = False) -> bool:
    """False only when the endpoint says the bucket does not exist; any other answer is True, or,
    with ``strict``, the domain error it stands for (access denied, endpoint unreachable)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client(settings).head_bucket(Bucket=bucket)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
            return False
        if strict:
            with _service_errors(f"s3://{bucket}/", settings, bucket):
                raise
    except BotoCoreError:
        if strict:
            with _service_errors(f"s3://{bucket}/", settings, bucket):
                raise
    return True
