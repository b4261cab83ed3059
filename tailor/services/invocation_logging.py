"""Model invocation logging: each principal's configuration, and their calls written as Bedrock logs them.

A principal turns logging on with PutModelInvocationLoggingConfiguration and an ``s3Config``
(``bucketName``, ``keyPrefix``): a bucket they may write, checked and proven writable at Put as a
customization job's output bucket is (``buckets.claim_output``). Tailor has no CloudWatch, so a
configuration that delivers only there is refused; one that names both is kept, and only S3
receives records. ``textDataDeliveryEnabled`` false (absent: true) leaves the bodies out of the
records: metadata and token counts only.

Every call served to a principal with logging on -- InvokeModel, InvokeModelWithResponseStream,
Converse, ConverseStream, an OpenAI chat completion -- becomes one record
(``tailor.wire.invocation_logs.invocation_record``), off the request path:

* the route hands ``InvocationLogWriter.log`` what it already has (bodies, token counts, request
  metadata); the principal's configuration comes from a short-lived per-process cache
  (``invocation_log_config_seconds``; Put and Delete through this process clear it at once);
* the call goes onto a bounded queue without waiting (``invocation_log_queue_records``; a full
  queue drops the record, counts it and warns) and a background thread builds the records and
  writes them, gzipped JSON lines, to
  ``s3://BUCKET/PREFIX/AWSLogs/ACCOUNT/BedrockModelInvocationLogs/REGION/YYYY/MM/DD/HH/*.json.gz``
  through ``tailor.storage``: every ``invocation_log_flush_records`` records or
  ``invocation_log_flush_seconds``, and at server shutdown;
* before each file the writer checks again that the principal may write the bucket; a destination
  that fails (no longer theirs, deleted, unwritable) costs a warning and those records, never the
  call. ``InvocationLogWriter.stats`` counts what was written and what was dropped.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tailor import storage
from tailor.errors import InvalidInput
from tailor.services import buckets
from tailor.settings import Settings
from tailor.store.data_in_out import InvocationLoggingConfig
from tailor.store.db import Store, utcnow
from tailor.wire.invocation_logs import invocation_record, log_object_key

log = logging.getLogger(__name__)

S3_FIELD = "loggingConfig.s3Config"
NO_CLOUDWATCH = (f"loggingConfig.cloudWatchConfig: Tailor has no CloudWatch Logs, so it cannot deliver logs "
                 f"there. Give {S3_FIELD} {{bucketName, keyPrefix}}: a bucket you own; the logs are written "
                 f"there as Bedrock writes them to S3.")


# ---------------------------------------------------------------- the configuration


@dataclass(frozen=True)
class Destination:
    """Where a principal's records go, and whether they hold the bodies."""

    bucket: str
    prefix: str  # the keyPrefix, without slashes at its ends
    text: bool

    def folder_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/" if self.prefix else f"s3://{self.bucket}/"


def _destination(config: Mapping) -> Destination | None:
    s3 = config.get("s3Config") or {}
    if not s3.get("bucketName"):
        return None
    return Destination(bucket=s3["bucketName"], prefix=(s3.get("keyPrefix") or "").strip("/"),
                       text=config.get("textDataDeliveryEnabled", True) is not False)


def put_config(store: Store, settings: Settings, principal: str, config: dict) -> None:
    """Turn logging on (or change it) for ``principal``; ``config`` is a valid ``LoggingConfig``."""
    destination = _destination(config)
    if destination is None:
        if config.get("cloudWatchConfig"):
            raise InvalidInput(NO_CLOUDWATCH)
        raise InvalidInput(f"{S3_FIELD}: required: the bucket (bucketName, and optionally keyPrefix) the logs "
                           "are written to. Tailor delivers invocation logs to S3 only.")
    buckets.claim_output(store, settings, principal, destination.folder_uri(), f"{S3_FIELD}.bucketName")
    with store.session() as session:
        session.merge(InvocationLoggingConfig(principal=principal, config=config, updated_at=utcnow()))
    _forget(store, principal)


def get_config(store: Store, principal: str) -> dict | None:
    with store.session() as session:
        row = session.get(InvocationLoggingConfig, principal)
        return dict(row.config) if row is not None else None


def delete_config(store: Store, principal: str) -> None:
    """Turn logging off for ``principal`` (nothing to do when it is off). Records already queued are
    still written."""
    with store.session() as session:
        row = session.get(InvocationLoggingConfig, principal)
        if row is not None:
            session.delete(row)
    _forget(store, principal)


# (database URL, principal) -> (valid until, destination): one database may have several Store objects.
_cache: dict[tuple[str, str], tuple[float, Destination | None]] = {}
_cache_lock = threading.Lock()


def _forget(store: Store, principal: str) -> None:
    with _cache_lock:
        _cache.pop((store.url, principal), None)


def destination_of(store: Store, settings: Settings, principal: str) -> Destination | None:
    """Where ``principal``'s calls are logged (None: logging is off), cached for
    ``invocation_log_config_seconds``: this runs on every inference call."""
    key, now = (store.url, principal), time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    config = get_config(store, principal)
    found = _destination(config) if config else None
    with _cache_lock:
        _cache[key] = (now + settings.invocation_log_config_seconds, found)
    return found


# ---------------------------------------------------------------- the records


@dataclass(frozen=True)
class Call:
    """One served call, as the route knows it. ``input_body`` is the request body (a JSON value, or
    the raw JSON bytes of an InvokeModel body); ``output_body`` is the whole answer in the
    operation's non-stream shape (a stream's answer assembled)."""

    principal: str
    operation: str
    model_id: str  # as the caller named it
    input_body: Any
    output_body: Any
    input_tokens: int
    output_tokens: int
    request_metadata: Mapping[str, str] | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    when: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def string_metadata(value: Any) -> dict[str, str] | None:
    """The string pairs of a request's metadata object (OpenAI's ``metadata``), or None."""
    if not isinstance(value, Mapping):
        return None
    pairs = {key: item for key, item in value.items() if isinstance(key, str) and isinstance(item, str)}
    return pairs or None


_STOP = object()


class InvocationLogWriter:
    """The queue between the routes and the log files, and the thread that writes them."""

    def __init__(self, store: Store, settings: Settings):
        self.store, self.settings = store, settings
        self.queue: queue.Queue = queue.Queue(maxsize=settings.invocation_log_queue_records)
        self.stats = {"queued": 0, "written": 0, "dropped_queue_full": 0, "dropped_write_failed": 0}
        self._thread: threading.Thread | None = None

    # -- the request path

    def log(self, call: Call) -> None:
        """Queue ``call`` if its principal logs; never raises, never waits."""
        try:
            destination = destination_of(self.store, self.settings, call.principal)
            if destination is None:
                return
            self.queue.put_nowait((call, destination))
            self.stats["queued"] += 1
        except queue.Full:
            self.stats["dropped_queue_full"] += 1
            if self.stats["dropped_queue_full"] in (1, 10, 100) or self.stats["dropped_queue_full"] % 1000 == 0:
                log.warning("invocation log queue full (%d records): %d calls not logged so far",
                            self.settings.invocation_log_queue_records, self.stats["dropped_queue_full"])
        except Exception:  # logging must never fail a call
            log.exception("invocation logging failed for a call of %s", call.principal)

    # -- the writer thread

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="invocation-log-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued and stop the thread."""
        if self._thread is None:
            return
        try:
            self.queue.put(_STOP, timeout=timeout)
        except queue.Full:  # the thread is stuck or gone: what is queued is lost, as in a crash
            log.warning("invocation log writer did not stop; %d records not written", self.queue.qsize())
            return
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        pending: dict[tuple[str, Destination, str], list[bytes]] = {}
        count, oldest = 0, None
        interval = self.settings.invocation_log_flush_seconds
        while True:
            wait = interval if oldest is None else max(0.0, oldest + interval - time.monotonic())
            try:
                item = self.queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if item is not None:
                call, destination = item
                try:
                    line = self._record_line(call, destination)
                except Exception:
                    log.exception("invocation log record of %s could not be built", call.principal)
                    self.stats["dropped_write_failed"] += 1
                else:
                    hour = call.when.astimezone(timezone.utc).strftime("%Y%m%d%H")
                    pending.setdefault((call.principal, destination, hour), []).append(line)
                    count += 1
                    oldest = oldest if oldest is not None else time.monotonic()
            if pending and (count >= self.settings.invocation_log_flush_records
                            or time.monotonic() - oldest >= interval):
                self._flush(pending)
                pending, count, oldest = {}, 0, None
        if pending:
            self._flush(pending)

    def _record_line(self, call: Call, destination: Destination) -> bytes:
        input_body = call.input_body
        if destination.text and isinstance(input_body, (bytes, bytearray)):  # a body as it came
            input_body = json.loads(input_body)
        record = invocation_record(
            request_id=call.request_id, timestamp=call.when, account_id=self.settings.account_id,
            identity_arn=f"arn:aws:iam::{self.settings.account_id}:user/{call.principal}",
            region=self.settings.region, operation=call.operation, model_id=call.model_id,
            input_body=input_body, output_body=call.output_body, input_tokens=call.input_tokens,
            output_tokens=call.output_tokens, request_metadata=call.request_metadata, text=destination.text)
        return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")

    def _flush(self, pending: dict[tuple[str, Destination, str], list[bytes]]) -> None:
        for (principal, destination, hour), lines in pending.items():
            when = datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=timezone.utc)
            name = f"{utcnow():%Y%m%dT%H%M%SZ}_{uuid.uuid4().hex}.json.gz"
            key = log_object_key(destination.prefix, self.settings.account_id, self.settings.region, when, name)
            uri = f"s3://{destination.bucket}/{key}"
            try:
                # Still theirs? A grant may have been revoked since the Put.
                buckets.authorize(self.store, principal, uri, "write", f"{S3_FIELD}.bucketName")
                self._write(uri, lines)
            except Exception as error:
                self.stats["dropped_write_failed"] += len(lines)
                log.warning("invocation logs of %s: %d records not written to %s: %s", principal, len(lines),
                            uri, getattr(error, "message", None) or error)
            else:
                self.stats["written"] += len(lines)

    def _write(self, uri: str, lines: list[bytes]) -> None:
        with tempfile.TemporaryDirectory(prefix="tailor-invocation-logs-") as folder:
            path = Path(folder) / "logs.json.gz"
            with gzip.open(path, "wb") as handle:
                handle.writelines(lines)
            storage.upload_file(path, uri, self.settings)
