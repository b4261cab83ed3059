"""Files and uploads (the OpenAI API's ``/v1/files`` and ``/v1/uploads``): each owned by the
principal that sent it, kept under ``$TAILOR_HOME/files/`` by its id.

A file for fine-tuning (``purpose="fine-tune"``) must be JSON Lines: its name ends in ``.jsonl`` and
every line is a JSON object, checked when it arrives so that a broken file is refused with its line
number before any job names it (the record format is checked by the job, against its method and
model, before training). Limits apply before the bytes are kept: one request's file up to
``max_file_bytes``; an upload up to ``max_upload_bytes`` in parts of up to 64 MiB, OpenAI's sizes.

Another principal's file is reported as not found, as one that does not exist; an expired file
(``expires_after``) is gone the same way, and its bytes are removed the next time files are listed
or an upload is created, as are the parts of uploads left pending past their hour.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, select

from tailor.errors import Conflict, InvalidInput, NotFound
from tailor.services.records import Page, after_page
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.files import (
    File,
    Upload,
    UploadPart,
    content_path,
    new_id,
    part_path,
)
from tailor.store.jobs import Job

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
WRITTEN_PURPOSES = ("fine-tune-results", "batch_output")  # what Tailor writes; no caller uploads these
EXPIRES_SECONDS = (3600, 2_592_000)  # OpenAI's bounds on expires_after.seconds: 1 hour to 30 days
UPLOAD_LIFETIME = timedelta(hours=1)  # an upload not completed within the hour expires (OpenAI's rule)
MAX_PART_BYTES = 64 * 1024 * 1024
MAX_LIST = 10_000
_COPY_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------------
# Files


def create_file(store: Store, settings: Settings, principal: str, *, filename: str, purpose: str,
                source: BinaryIO, expires_after: int | None = None) -> File:
    """Keep ``source``'s bytes as the caller's file (checked first: purpose, name, size, and for
    fine-tuning every line)."""
    _check_new_file(settings, filename, purpose, expires_after)
    file_id = new_id("file-")
    path = content_path(settings.home, file_id)
    size = _copy_limited(source, path, settings.max_file_bytes, "file")
    return _register(store, settings, principal, file_id, path, filename=filename, purpose=purpose,
                     size=size, expires_after=expires_after)


def get_file(store: Store, principal: str, file_id: str) -> File:
    with store.session() as session:
        return _owned_file(session, principal, file_id)


def list_files(store: Store, settings: Settings, principal: str, *, purpose: str | None = None,
               order: str = "desc", after: str | None = None, limit: int = MAX_LIST) -> Page:
    if order not in ("asc", "desc"):
        raise InvalidInput(f"order: must be asc or desc; got {order!r}.")
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit: must be between 1 and {MAX_LIST:,}; got {limit}.")
    _remove_expired(store, settings)
    conditions = [File.principal == principal]
    if purpose is not None:
        conditions.append(File.purpose == purpose)
    with store.session() as session:
        return after_page(session, File, conditions, after=after, descending=order == "desc", limit=limit)


def delete_file(store: Store, settings: Settings, principal: str, file_id: str) -> str:
    """Remove the caller's file and its bytes; refused while a job that has not finished reads it."""
    with store.session() as session:
        row = _owned_file(session, principal, file_id)
        for job in session.scalars(select(Job).where(Job.principal == principal, Job.end_time.is_(None))):
            openai = job.spec.get("openai") or {}
            if file_id in (openai.get("training_file"), openai.get("validation_file")):
                raise Conflict(f"File {file_id} is the data of fine-tuning job {job.id}, which has not finished; "
                               "delete it when the job has ended (or cancel the job).")
        session.delete(row)
    content_path(settings.home, file_id).unlink(missing_ok=True)
    return file_id


def content_of(store: Store, settings: Settings, principal: str, file_id: str) -> tuple[File, Path]:
    row = get_file(store, principal, file_id)
    return row, content_path(settings.home, row.id)


def training_path(store: Store, settings: Settings, principal: str, file_id: str, field: str) -> str:
    """Where the caller's fine-tuning file ``file_id`` is, for a job to read (``field`` names it in errors)."""
    return str(_input_path(store, settings, principal, file_id, field, "fine-tune", "a training file"))


def batch_input_path(store: Store, settings: Settings, principal: str, file_id: str, field: str) -> Path:
    """Where the caller's batch input file ``file_id`` is, for a batch to read (``field`` names it in errors)."""
    return _input_path(store, settings, principal, file_id, field, "batch", "a batch's input file")


def _input_path(store: Store, settings: Settings, principal: str, file_id: str, field: str, purpose: str,
                what: str) -> Path:
    """The bytes of the caller's file ``file_id``, which must have been uploaded for ``purpose``."""
    with store.session() as session:
        try:
            row = _owned_file(session, principal, file_id)
        except NotFound:
            raise InvalidInput(f"{field}: file {file_id} not found; upload it with client.files.create"
                               f"(file=..., purpose=\"{purpose}\").", param=field) from None
    if row.purpose != purpose:
        raise InvalidInput(f"{field}: file {file_id} has purpose {row.purpose!r}; {what} needs "
                           f"purpose \"{purpose}\".", param=field)
    return content_path(settings.home, row.id)


def _check_new_file(settings: Settings, filename: str, purpose: str, expires_after: int | None) -> None:
    if purpose not in PURPOSES:
        raise InvalidInput(f"purpose: must be one of {', '.join(PURPOSES)}; got {purpose!r}.", param="purpose")
    if not filename or len(filename) > 512 or any(ord(c) < 32 for c in filename):
        raise InvalidInput("file: a file name of 1 to 512 printable characters is required.", param="file")
    if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
        raise InvalidInput(f"file: a fine-tuning file must be JSON Lines named *.jsonl; got {filename!r}.",
                           param="file")
    if expires_after is not None and not EXPIRES_SECONDS[0] <= expires_after <= EXPIRES_SECONDS[1]:
        raise InvalidInput(f"expires_after.seconds: must be between {EXPIRES_SECONDS[0]} and {EXPIRES_SECONDS[1]}; "
                           f"got {expires_after}.", param="expires_after")


def _register(store: Store, settings: Settings, principal: str, file_id: str, path: Path, *, filename: str,
              purpose: str, size: int, expires_after: int | None) -> File:
    """The file at ``path``, checked, as the caller's: its bytes are removed if it is refused."""
    try:
        if size == 0:
            raise InvalidInput("file: the file is empty.", param="file")
        if purpose == "fine-tune":
            check_json_lines(path, filename)
        now = utcnow()
        expires_at = now + timedelta(seconds=expires_after) if expires_after else None
        return _add(store, File(id=file_id, principal=principal, purpose=purpose, filename=filename, bytes=size,
                                created_at=now, expires_at=expires_at))
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def check_json_lines(path: Path, filename: str, most: int = 10) -> None:
    """Every non-blank line a JSON object; up to ``most`` problems named by line, else none."""
    problems = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (ValueError, UnicodeDecodeError) as error:
                problems.append(f"line {number}: not valid JSON ({error})")
            else:
                if not isinstance(value, dict):
                    problems.append(f"line {number}: a JSON object is expected, not {type(value).__name__}")
            if len(problems) >= most:
                break
    if problems:
        raise InvalidInput(f"file: {filename} is not valid JSON Lines: " + "; ".join(problems) + ".", param="file")


def _owned_file(session, principal: str, file_id: str) -> File:
    row = session.get(File, file_id) if isinstance(file_id, str) else None
    if row is None or row.principal != principal or _expired(row):
        raise NotFound(f"No such File object: {file_id}", param="file_id")
    return row


def _expired(row: File | Upload) -> bool:
    return row.expires_at is not None and row.expires_at <= utcnow()


def _remove_expired(store: Store, settings: Settings) -> None:
    """Expired files go, with their bytes; uploads left pending past their hour expire, their parts
    removed (an abandoned upload holds no disk)."""
    with store.session() as session:
        gone = list(session.scalars(select(File.id).where(File.expires_at <= utcnow())))
        if gone:
            session.execute(delete(File).where(File.id.in_(gone)))
        abandoned = list(session.scalars(select(Upload).where(Upload.status == "pending",
                                                              Upload.expires_at <= utcnow())))
        for upload in abandoned:
            upload.status = "expired"
            session.execute(delete(UploadPart).where(UploadPart.upload_id == upload.id))
        abandoned_ids = [upload.id for upload in abandoned]
    for file_id in gone:
        content_path(settings.home, file_id).unlink(missing_ok=True)
    for upload_id in abandoned_ids:
        shutil.rmtree(part_path(settings.home, upload_id, "-").parent, ignore_errors=True)


def _add(store: Store, row):
    with store.session() as session:
        session.add(row)
        session.flush()
        session.expunge(row)
    return row


def _copy_limited(source: BinaryIO, destination: Path, most: int, what: str) -> int:
    """Copy ``source`` to ``destination`` atomically, refusing it past ``most`` bytes (nothing is kept)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".part")
    size = 0
    try:
        with temporary.open("wb") as out:
            while chunk := source.read(_COPY_CHUNK):
                size += len(chunk)
                if size > most:
                    raise InvalidInput(f"{what}: larger than this server accepts ({most:,} bytes).",
                                       param="file" if what == "file" else "data")
                out.write(chunk)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return size


# ---------------------------------------------------------------------------------------------
# Uploads: a file in parts


def create_upload(store: Store, settings: Settings, principal: str, *, filename: str, purpose: str, size: int,
                  mime_type: str, expires_after: int | None = None) -> Upload:
    _check_new_file(settings, filename, purpose, expires_after)
    if not 1 <= size <= settings.max_upload_bytes:
        raise InvalidInput(f"bytes: must be between 1 and {settings.max_upload_bytes:,}; got {size}.", param="bytes")
    if purpose == "fine-tune" and mime_type != "application/jsonl":
        raise InvalidInput(f"mime_type: a fine-tuning upload is application/jsonl; got {mime_type!r}.",
                           param="mime_type")
    _remove_expired(store, settings)
    now = utcnow()
    return _add(store, Upload(id=new_id("upload_"), principal=principal, purpose=purpose, filename=filename,
                              mime_type=mime_type, bytes=size, status="pending", file_id=None,
                              file_expires_after=expires_after, created_at=now, expires_at=now + UPLOAD_LIFETIME))


def add_part(store: Store, settings: Settings, principal: str, upload_id: str, source: BinaryIO) -> UploadPart:
    with store.session() as session:
        _pending(session, principal, upload_id)
    part_id = new_id("part_")
    size = _copy_limited(source, part_path(settings.home, upload_id, part_id), MAX_PART_BYTES, "part")
    try:
        with store.session() as session:
            _pending(session, principal, upload_id)  # cancelled or expired meanwhile: the part is not kept
    except Conflict:
        shutil.rmtree(part_path(settings.home, upload_id, part_id).parent, ignore_errors=True)
        raise
    with store.session() as session:
        part = UploadPart(id=part_id, upload_id=upload_id, bytes=size, created_at=utcnow())
        session.add(part)
        session.flush()
        session.expunge(part)
    return part


def complete_upload(store: Store, settings: Settings, principal: str, upload_id: str, part_ids: Iterable[str],
                    md5: str | None = None) -> tuple[Upload, File]:
    """Join the named parts, in order, into the file; they must add up to the bytes announced."""
    part_ids = list(part_ids)
    with store.session() as session:
        upload = _pending(session, principal, upload_id)
        parts = {part.id: part for part in session.scalars(select(UploadPart).where(UploadPart.upload_id == upload_id))}
        unknown = [part_id for part_id in part_ids if part_id not in parts]
        if unknown or not part_ids or len(set(part_ids)) != len(part_ids):
            raise InvalidInput("part_ids: " + (f"not parts of upload {upload_id}: {', '.join(map(str, unknown[:5]))}"
                                               if unknown else "each part once, at least one") + ".", param="part_ids")
        total = sum(parts[part_id].bytes for part_id in part_ids)
        if total != upload.bytes:
            raise InvalidInput(f"part_ids: the parts hold {total:,} bytes; the upload was created for "
                               f"{upload.bytes:,}.", param="part_ids")
        filename, purpose, expires_after = upload.filename, upload.purpose, upload.file_expires_after
    file_id = new_id("file-")
    path = content_path(settings.home, file_id)
    digest = _join([part_path(settings.home, upload_id, part_id) for part_id in part_ids], path)
    if md5 and digest != md5.lower():
        path.unlink(missing_ok=True)
        raise InvalidInput(f"md5: the parts' MD5 is {digest}, not {md5}.", param="md5")
    file = _register(store, settings, principal, file_id, path, filename=filename, purpose=purpose, size=total,
                     expires_after=expires_after)
    with store.session() as session:
        upload = session.get(Upload, upload_id)
        upload.status, upload.file_id = "completed", file.id
        session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
        session.flush()
        session.expunge(upload)
    shutil.rmtree(part_path(settings.home, upload_id, "-").parent, ignore_errors=True)
    return upload, file


def cancel_upload(store: Store, settings: Settings, principal: str, upload_id: str) -> Upload:
    with store.session() as session:
        upload = _pending(session, principal, upload_id)
        upload.status = "cancelled"
        session.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
        session.flush()
        session.expunge(upload)
    shutil.rmtree(part_path(settings.home, upload_id, "-").parent, ignore_errors=True)
    return upload


def _pending(session, principal: str, upload_id: str) -> Upload:
    upload = session.get(Upload, upload_id) if isinstance(upload_id, str) else None
    if upload is None or upload.principal != principal:
        raise NotFound(f"No such Upload object: {upload_id}", param="upload_id")
    if upload.status == "pending" and _expired(upload):
        upload.status = "expired"
    if upload.status != "pending":
        raise Conflict(f"Upload {upload_id} is {upload.status}; only a pending upload takes parts, completes "
                       "or cancels.")
    return upload


def _join(parts: list[Path], destination: Path) -> str:
    """Concatenate ``parts`` into ``destination`` (atomically); their MD5, hex."""
    digest = hashlib.md5(usedforsecurity=False)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(destination.name + ".part")
    try:
        with temporary.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(_COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)
    return digest.hexdigest()
