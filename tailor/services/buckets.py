"""Who may read and write which bucket: storage belongs to principals.

Every ``s3://`` URI a request names — training, validation and RFT data, evaluation datasets,
output locations — is authorised here when the request enters, before any work is queued:

- a bucket belongs to the one principal that created it (``buckets`` table): its owner reads and
  writes it;
- the operator can grant another principal ``read`` or ``write`` (which includes read) on a bucket
  (``bucket_grants``; ``tailor buckets grant``);
- nobody else reaches it, and the answer is the same ``AccessDenied`` whether the bucket belongs
  to someone else or to no one, so a caller learns nothing about other principals' buckets.

A bucket comes to belong to a principal in two ways: the operator creates it for them
(``tailor buckets create NAME --owner P``, or ``tailor data upload ... --principal P``, which
creates the bucket when it is new), or, for local buckets only, a principal names a bucket that
does not exist yet as an output location and so claims it, as creating a bucket in S3 would. With
an S3 endpoint configured the same rules apply to its buckets, but only the operator registers
them: the server's credentials may reach buckets on that service that are nobody's business here.

The API accepts only ``s3://`` URIs, never a server path or a ``file://`` URI: only the operator,
on the machine, names local files (the CLI).
"""

from __future__ import annotations

import re
from typing import Literal

from sqlalchemy import select

from tailor import storage
from tailor.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tailor.settings import Settings
from tailor.store.buckets import Bucket, BucketGrant
from tailor.store.db import Store, utcnow

Access = Literal["read", "write"]
ACCESS_LEVELS: tuple[Access, ...] = ("read", "write")
# S3's rule for bucket names (the same as botocore's S3Uri pattern): 3 to 63 lowercase letters,
# digits, dots and hyphens, starting and ending with a letter or digit.
BUCKET_NAME = re.compile(r"[a-z0-9][-.a-z0-9]{1,61}[a-z0-9]")


def check_name(name: str) -> str:
    if not isinstance(name, str) or not BUCKET_NAME.fullmatch(name) or ".." in name:
        raise InvalidInput(f"Bucket name {name!r} is not valid: use 3 to 63 lowercase letters, digits, '.' "
                           "and '-', starting and ending with a letter or digit.")
    return name


# ---------------------------------------------------------------------------------------------
# The operator's side: create, grant, revoke, list


def create_bucket(store: Store, settings: Settings, name: str, owner: str) -> bool:
    """Create bucket ``name`` for ``owner`` (the folder, or the bucket on the S3 endpoint) and
    record it as theirs. Returns False when it was theirs already; ``Conflict`` when it is another
    principal's."""
    check_name(name)
    _check_principal(owner)
    with store.session() as session:
        row = session.get(Bucket, name)
        if row is not None and row.owner != owner:
            raise Conflict(f"Bucket {name} belongs to {row.owner}; grant {owner} access instead "
                           f"(tailor buckets grant {name} --principal {owner}).")
        storage.ensure_bucket(name, settings)
        if row is not None:
            return False
        session.add(Bucket(name=name, owner=owner, created_at=utcnow()))
    return True


def grant(store: Store, name: str, principal: str, access: Access) -> None:
    """Let ``principal`` read (or read and write) another principal's bucket."""
    if access not in ACCESS_LEVELS:
        raise InvalidInput(f"Access {access!r} is not one of {', '.join(ACCESS_LEVELS)}.")
    _check_principal(principal)
    with store.session() as session:
        bucket = _existing(session, name)
        if bucket.owner == principal:
            raise InvalidInput(f"{principal} owns bucket {name} already.")
        session.merge(BucketGrant(bucket=name, principal=principal, access=access, created_at=utcnow()))


def revoke(store: Store, name: str, principal: str) -> None:
    with store.session() as session:
        _existing(session, name)
        row = session.get(BucketGrant, (name, principal))
        if row is None:
            raise NotFound(f"{principal} has no grant on bucket {name}.")
        session.delete(row)


def list_buckets(store: Store) -> list[dict]:
    """Every registered bucket with its owner and grants, by name."""
    with store.session() as session:
        grants: dict[str, list[dict]] = {}
        for row in session.scalars(select(BucketGrant).order_by(BucketGrant.principal)):
            grants.setdefault(row.bucket, []).append({"principal": row.principal, "access": row.access})
        return [{"name": bucket.name, "owner": bucket.owner, "grants": grants.get(bucket.name, [])}
                for bucket in session.scalars(select(Bucket).order_by(Bucket.name))]


def prepare_upload(store: Store, settings: Settings, principal: str, uri: str) -> None:
    """The operator puts a file at ``uri`` for ``principal``: a bucket new to Tailor becomes theirs
    (this is also how the operator hands a bucket that predates ownership to its principal); an
    owned bucket must be theirs, or shared with them for writing."""
    bucket = _bucket(uri, "destination")
    with store.session() as session:
        known = session.get(Bucket, bucket) is not None
    if not known:
        create_bucket(store, settings, bucket, principal)
    authorize(store, principal, uri, "write", "destination")


def _existing(session, name: str) -> Bucket:
    bucket = session.get(Bucket, name)
    if bucket is None:
        raise NotFound(f"No bucket {name} is registered (tailor buckets list shows them).")
    return bucket


def _check_principal(principal: str) -> None:
    if not isinstance(principal, str) or not principal.strip() or len(principal) > 256:
        raise InvalidInput("A principal is a name of 1 to 256 characters.")


# ---------------------------------------------------------------------------------------------
# The API's side: authorise every URI a request names


def access_of(store: Store, principal: str, bucket: str) -> Access | None:
    """What ``principal`` may do with ``bucket``: ``write`` (owner or granted), ``read``, or None."""
    with store.session() as session:
        row = session.get(Bucket, bucket)
        if row is None:
            return None
        if row.owner == principal:
            return "write"
        granted = session.get(BucketGrant, (bucket, principal))
        return granted.access if granted is not None else None


def authorize(store: Store, principal: str, uri: str, access: Access, field: str) -> None:
    """Let ``principal`` read (or write) what ``uri`` names, or raise ``AccessDenied`` naming the
    field. Only ``s3://`` URIs are accepted."""
    bucket = _bucket(uri, field)
    allowed = access_of(store, principal, bucket)
    if allowed == "write" or allowed == access:
        return
    raise _denied(uri, access, field, bucket)


def authorize_input(store: Store, settings: Settings, principal: str, uri: str, field: str) -> None:
    """Authorise a file a job reads and prove that it is there, before the job is queued: the caller
    must be allowed to read it (``authorize``, first, so that nobody learns what another principal's
    bucket holds), then one HEAD request (a stat, for a local bucket) finds it. Raises
    ``AccessDenied`` (not theirs) or ``InvalidInput`` naming the field and the URI (no such object
    or bucket, or the server's own credentials cannot read it)."""
    authorize(store, principal, uri, "read", field)
    try:
        storage.size(uri, settings)
    except (InvalidInput, NotFound, AccessDenied) as error:
        raise InvalidInput(f"{field}: {error.message}") from None


def claim_output(store: Store, settings: Settings, principal: str, uri: str, field: str) -> None:
    """Authorise an output location for writing and prove it writable, before any compute runs.

    A local bucket that does not exist yet is created for ``principal`` (claimed). Raises
    ``AccessDenied`` (not theirs) or ``InvalidInput`` (cannot be written: the message says why).
    """
    bucket = _bucket(uri, field)
    if (not settings.s3_endpoint_url and access_of(store, principal, bucket) is None
            and not storage.local_bucket_exists(bucket, settings)):
        _claim(store, settings, principal, bucket, field)
    authorize(store, principal, uri, "write", field)
    try:
        storage.check_writable(uri, settings)
    except (InvalidInput, NotFound, AccessDenied) as error:
        raise InvalidInput(f"{field}: Tailor cannot write the results there: {error.message}") from None


def _claim(store: Store, settings: Settings, principal: str, bucket: str, field: str) -> None:
    from sqlalchemy.exc import IntegrityError

    try:
        storage.ensure_bucket(bucket, settings)
    except InvalidInput as error:
        raise InvalidInput(f"{field}: {error.message}") from None
    try:
        with store.session() as session:
            session.add(Bucket(name=bucket, owner=principal, created_at=utcnow()))
    except IntegrityError:
        pass  # claimed at the same moment by another request: authorize decides whose it is


def _bucket(uri: str, field: str) -> str:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise InvalidInput(f"{field}: expected an s3://BUCKET/KEY URI; the API reads no server paths.")
    try:
        bucket, _ = storage.bucket_of(uri)
        return check_name(bucket)
    except InvalidInput as error:
        raise InvalidInput(f"{field}: {error.message}") from None


def _denied(uri: str, access: Access, field: str, bucket: str) -> AccessDenied:
    verb = "read" if access == "read" else "write to"
    return AccessDenied(f"{field}: you may not {verb} {uri}: bucket {bucket} is not yours and was not shared "
                        f"with you. Use a bucket you own (`tailor data upload FILE s3://BUCKET/KEY --principal "
                        f"YOU` creates one), or ask the operator for access (`tailor buckets grant`).")
