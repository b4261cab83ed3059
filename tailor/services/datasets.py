"""Datasets in the caller's buckets: upload one, list them, validate one, show what training sees.

What the console's Datasets page calls (and what an API twin would call). Every URI goes through
``services.buckets`` exactly as a job's URIs do: a caller reads and writes only its own buckets
(or those shared with it), and a bucket of someone else's is ``AccessDenied`` whether or not it
exists. Uploading to a local bucket nobody has yet claims it for the caller, as naming it as a
job's output location does.

Validation is ``tailor.data.datasets.validate_dataset`` (the same rules a job's data meets, every
problem by file, line and field; token counts estimated, as the API process loads no tokenizer).
The training view needs the model's tokenizer, so the engine process renders it
(``EngineClient.render`` → ``tailor.data.preview``); a custom model renders with its base's
tokenizer.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from contextlib import closing
from pathlib import Path
from typing import Any, BinaryIO

from tailor import storage
from tailor.catalog import (
    CustomizationType,
    ResolvedModel,
    resolve_model,
    resolve_registered_model,
)
from tailor.data.datasets import validate_dataset
from tailor.data.validate import Report
from tailor.errors import AccessDenied, InvalidInput, ModelUnavailable, NotFound
from tailor.services import buckets, inference, models
from tailor.settings import Settings
from tailor.store.db import Store

# What the page offers; a model supports a subset (its catalog entry says which).
KINDS = (CustomizationType.FINE_TUNING, CustomizationType.CONTINUED_PRE_TRAINING,
         CustomizationType.REINFORCEMENT_FINE_TUNING, CustomizationType.DPO)
DATASET_SUFFIX = ".jsonl"
PREVIEW_MAX = 50  # records per training view: each is tokenized and shown whole
LISTED_MAX = 500  # datasets listed per bucket (a page, not an inventory); the rest are counted


def upload(store: Store, settings: Settings, principal: str, uri: str, source_path: Path) -> dict[str, Any]:
    """Put the local file ``source_path`` at ``uri`` (``s3://BUCKET/KEY.jsonl``) for ``principal``.

    A local bucket that does not exist yet becomes the caller's; an existing one must be theirs,
    or shared with them for writing (``AccessDenied`` otherwise)."""
    bucket, key = _dataset_uri(uri)
    buckets.claim_output(store, settings, principal, f"s3://{bucket}/", "uri")
    buckets.authorize(store, principal, uri, "write", "uri")
    storage.upload_file(Path(source_path), uri, settings)
    return {"uri": uri, "bucket": bucket, "key": key, "size": Path(source_path).stat().st_size}


def upload_stream(store: Store, settings: Settings, principal: str, uri: str, stream: BinaryIO,
                  field: str = "body") -> dict[str, Any]:
    """``upload`` from a stream (an HTTP body): copied first into a private file under
    ``$TAILOR_HOME/tmp`` (never a caller-chosen path), at most ``max_file_bytes``, then put at ``uri``;
    the copy is removed whatever happens. ``field`` names the request's file in errors."""
    _dataset_uri(uri)  # refused before a byte is copied
    folder = settings.home / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=DATASET_SUFFIX)
    path = Path(name)
    try:
        copied = 0
        with os.fdopen(handle, "wb") as out:
            while block := stream.read(1 << 20):
                copied += len(block)
                if copied > settings.max_file_bytes:
                    raise InvalidInput(f"{field}: over this server's limit of {settings.max_file_bytes:,} bytes "
                                       "(TAILOR_MAX_FILE_BYTES).", param=field)
                out.write(block)
        if copied == 0:
            raise InvalidInput(f"{field}: the file is empty.", param=field)
        return upload(store, settings, principal, uri, path)
    finally:
        path.unlink(missing_ok=True)


def list_datasets(store: Store, settings: Settings, principal: str) -> list[dict[str, Any]]:
    """The buckets ``principal`` owns or was granted, each with its ``.jsonl`` objects and sizes
    (the first ``LISTED_MAX`` by key; ``more`` counts the others)."""
    listed = []
    for row in buckets.list_buckets(store):
        access = buckets.access_of(store, principal, row["name"])
        if access is None:
            continue
        bucket_uri = f"s3://{row['name']}/"
        try:
            objects = [{"key": key, "uri": bucket_uri + key, "size": size}
                       for key, size in storage.list_objects(bucket_uri, settings)
                       if key.endswith(DATASET_SUFFIX)]
            problem = None
        except (NotFound, InvalidInput, AccessDenied) as error:
            objects, problem = [], error.message
        listed.append({"bucket": row["name"], "uri": bucket_uri, "access": access,
                       "owner": row["owner"] == principal, "objects": objects[:LISTED_MAX],
                       "more": max(0, len(objects) - LISTED_MAX), "problem": problem})
    return listed


def resolve_base(store: Store, settings: Settings, principal: str, base_model: str) -> ResolvedModel:
    """The model a dataset is meant for: a foundation model the operator made available, or one
    of the caller's custom models (by ARN or name), resolved as a job resolves its base."""
    if not isinstance(base_model, str) or not base_model.strip():
        raise InvalidInput("base_model: choose a model.", param="base_model")
    try:
        return resolve_registered_model(base_model, settings)
    except ModelUnavailable as error:
        raise InvalidInput(f"base_model: {error.message}", param="base_model") from None
    except NotFound:
        pass  # perhaps one of the caller's custom models
    try:
        view = models.get_custom_model(store, principal, base_model)
    except NotFound:
        raise NotFound(f"base_model: {base_model} is neither a foundation model nor one of your custom models.",
                       param="base_model") from None
    return resolve_model(view.row.artifacts_dir, settings)


def _kind(kind: str | CustomizationType, model: ResolvedModel) -> CustomizationType:
    try:
        kind = CustomizationType(kind)
    except ValueError:
        raise InvalidInput(f"kind: {kind!r} is not one of {', '.join(k.value for k in KINDS)}.",
                           param="kind") from None
    if kind not in KINDS:
        raise InvalidInput(f"kind: {kind.value} has no dataset checks here.", param="kind")
    if kind not in model.customization_types:
        supported = ", ".join(k.value for k in model.customization_types if k in KINDS)
        raise InvalidInput(f"kind: {model.model_id} supports {supported}, not {kind.value}.", param="kind")
    return kind


def validate(store: Store, settings: Settings, principal: str, uri: str, kind: str | CustomizationType,
             base_model: str, validation_uri: str | None = None) -> list[Report]:
    """The reports of ``validate_dataset`` (training file first, then the validation file when
    given): every problem by file, line and field."""
    buckets.authorize(store, principal, uri, "read", "uri")
    validation_uris = [validation_uri] if validation_uri else []
    for other in validation_uris:
        buckets.authorize(store, principal, other, "read", "validation_uri")
    model = resolve_base(store, settings, principal, base_model)
    wanted = _kind(kind, model)
    return validate_dataset(uri, validation_uris, wanted, model, tokenizer=None, settings=settings)


def first_records(settings: Settings, uri: str, first: int) -> list[dict[str, Any]]:
    """The file's first ``first`` non-blank lines: ``{"line", "record"}`` parsed, or ``{"line", "error"}``.

    The records together hold at most ``max_prompt_characters`` (what one inference request may
    send the engine): a preview costs the engine no more than one prompt, however long the lines.
    The lines are read off the file's stream (``storage.iter_lines``), and reading stops there: a
    preview of a large object on the S3 endpoint fetches its first lines, not the whole object."""
    entries: list[dict[str, Any]] = []
    budget = settings.max_prompt_characters
    with closing(storage.iter_lines(uri, settings)) as lines:
        for number, raw in enumerate(lines, start=1):
            if len(entries) >= first:
                break
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            if len(line) > budget:
                entries.append({"line": number, "error": f"The preview shows at most "
                                f"{settings.max_prompt_characters:,} characters of records; not shown here."})
                continue
            budget -= len(line)
            try:
                entries.append({"line": number, "record": json.loads(line)})
            except json.JSONDecodeError as error:
                entries.append({"line": number, "error": f"Not JSON: {error.msg} (column {error.colno})."})
    return entries


def _preview_inputs(store: Store, settings: Settings, principal: str, uri: str, kind, base_model: str,
                    first: int) -> tuple[CustomizationType, str, list[dict[str, Any]]]:
    buckets.authorize(store, principal, uri, "read", "uri")
    model = resolve_base(store, settings, principal, base_model)
    wanted = _kind(kind, model)
    # The tokenizer of the weights that would train: a custom model's base for an adapter.
    tokenizer_of = inference.weights_for(store, settings, principal, base_model).base
    return wanted, tokenizer_of, first_records(settings, uri, max(1, min(int(first), PREVIEW_MAX)))


async def training_view(store: Store, settings: Settings, principal: str, uri: str, kind, base_model: str,
                        engine, first: int = 10) -> list[dict[str, Any]]:
    """The first ``first`` records as training renders them (``tailor.data.preview``): per record
    its line, ``segments`` [[text, learned], ...], ``tokens`` and ``targets`` — or an ``error``
    (a line that is not JSON or not a record of ``kind``)."""
    wanted, tokenizer_of, entries = await asyncio.to_thread(_preview_inputs, store, settings, principal, uri,
                                                            kind, base_model, first)
    parsed = [entry for entry in entries if "record" in entry]
    rendered = await engine.render(tokenizer_of, wanted.value, [entry["record"] for entry in parsed]) \
        if parsed else []
    for entry, view in zip(parsed, rendered):
        del entry["record"]
        entry.update(view)
    return entries


def _dataset_uri(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidInput("uri: expected s3://BUCKET/KEY.jsonl.", param="uri")
    try:
        bucket, key = storage.bucket_of(uri)
        buckets.check_name(bucket)
    except InvalidInput as error:
        raise InvalidInput(f"uri: {error.message}", param="uri") from None
    if not key or key.endswith("/") or not key.endswith(DATASET_SUFFIX):
        raise InvalidInput(f"uri: name a {DATASET_SUFFIX} object, as s3://BUCKET/KEY{DATASET_SUFFIX}.",
                           param="uri")
    return bucket, key


def model_choices(store: Store, settings: Settings, principal: str) -> list[dict[str, str]]:
    """The models a dataset can be checked for: ``{"id", "label"}`` of each foundation
    model the operator made available, then each of the caller's active custom models."""
    choices = [{"id": summary["modelId"], "label": f"{summary['modelName']} ({summary['modelId']})"}
               for summary in models.list_foundation_models(settings, {})["modelSummaries"]]
    rows, _ = models.list_custom_models(store, principal, {"modelStatus": "Active"})
    choices += [{"id": row.arn, "label": f"{row.name} (custom, {row.customization_type})"} for row in rows]
    return choices
