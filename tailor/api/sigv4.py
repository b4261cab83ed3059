"""Verify AWS Signature Version 4 on incoming requests, so unchanged boto3 clients can call Tailor.

boto3 signs every request with SigV4: an HMAC chain keyed by the secret access key over a
*canonical request* (method, path, query, chosen headers, body hash). The server cannot check the
signature any other way than rebuilding that canonical request byte for byte and recomputing the
HMAC, so this module mirrors botocore's ``SigV4Auth`` (the non-S3 variant) exactly:

* **path** — the path as it came over the wire (still percent-encoded), with ``.``/``..`` segments
  and repeated slashes removed, then percent-encoded *again* with ``/`` and ``~`` kept. botocore
  applies that second encoding to a path that already carries escapes, so a Bedrock ARN sent as
  ``arn%3Aaws...%2Fabc`` is signed as ``arn%253Aaws...%252Fabc``. The decoded path would lose the
  difference between ``%2F`` and ``/``; that is why callers must pass the raw path.
* **query** — ``key=value`` pairs sorted by key then value. botocore has two ways to get them:
  a boto3 client puts the query in the URL already encoded and signs those pairs verbatim, while
  an ``AWSRequest(params=...)`` is sent form-encoded (space as ``+``) but signed with ``%20``. A
  request verifies if it matches either form (see ``canonical_query_forms``).
* **headers** — the ones named in ``SignedHeaders``, lowercased, values trimmed with runs of
  whitespace collapsed to one space.
* **payload** — ``x-amz-content-sha256`` when sent (it must then match the body; the
  ``UNSIGNED-PAYLOAD`` marker is accepted only for a request without a body, or a swapped body
  would pass), else the SHA-256 of the body.

A valid signature is not enough: it must also be *for this server* (``SigningScope``) — the
signed ``Host`` one this server answers to, the credential scope's region this server's region
and its service ``bedrock`` (the signing name of both botocore models), and the request time
within 15 minutes of the server's clock. So a request signed for another host, region or
service cannot be replayed here.

Every failure raises ``AccessDenied`` with a message saying what was wrong; no message ever
contains the expected signature or a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import quote, unquote_to_bytes, urlsplit

from tailor.errors import AccessDenied

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_CREDENTIAL_DATE = re.compile(r"\d{8}")


@dataclass(frozen=True)
class SigningScope:
    """What a request must be signed for to be accepted by this server."""

    region: str
    service: str = "bedrock"
    hosts: tuple[str, ...] | None = None  # Host headers this server answers to; None: not checked


@dataclass(frozen=True)
class Credential:
    """Who signed a verified request, and for which day, region and service."""

    access_key_id: str
    date: str  # YYYYMMDD, as in the credential scope
    region: str
    service: str


def verify_request(
    *,
    method: str,
    raw_path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
    scope: SigningScope | None = None,
) -> Credential:
    """Check the SigV4 ``Authorization`` header of one request; return its credential or raise.

    ``raw_path`` is the path exactly as sent, still percent-encoded (ASGI ``scope["raw_path"]``
    decoded as ASCII), and ``query_string`` the raw query without ``?``. ``headers`` maps
    *lowercase* names to values; join repeated headers with ``","`` first. ``secret_for`` returns the secret of an access key
    id, or None when the key is unknown. ``now`` defaults to the current time (naive means UTC).
    Raises ``AccessDenied`` naming what was wrong.
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise AccessDenied("Missing Authorization header: requests must be signed with AWS SigV4.")
    access_key_id, credential_scope, signed_headers, signature = _parse_authorization(authorization)
    date, region, service = credential_scope
    for name in signed_headers:
        if name not in headers:
            raise AccessDenied(f"Signed header {name!r} is missing from the request.")
    if scope is not None:
        _check_scope(scope, region, service, headers["host"])

    # The date must be signed, or a captured request could be replayed with a fresh one.
    request_time, timestamp = _request_time(headers, signed_headers)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if abs(now - request_time) > max_skew:
        raise AccessDenied(
            f"Request time {timestamp} is too far from server time "
            f"{now.astimezone(UTC).strftime(AMZ_DATE_FORMAT)} "
            f"(more than {max_skew.total_seconds() / 60:g} minutes apart); "
            "check the client's clock."
        )
    if date != timestamp[:8]:
        raise AccessDenied(
            f"Credential date {date} does not match the request date {timestamp[:8]} "
            f"from the {'x-amz-date' if 'x-amz-date' in headers else 'date'} header."
        )

    secret = secret_for(access_key_id)
    if secret is None:
        raise AccessDenied(f"Unknown access key id {access_key_id!r}.")

    payload_hash = _payload_hash(headers, body)
    key = signing_key(secret, date, region, service)
    for canonical_query in canonical_query_forms(query_string):
        canonical = canonical_request(
            method=method,
            raw_path=raw_path,
            canonical_query=canonical_query,
            headers=headers,
            signed_headers=signed_headers,
            payload_hash=payload_hash,
        )
        string_to_sign = "\n".join([
            ALGORITHM,
            timestamp,
            f"{date}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ])
        expected = _hmac(key, string_to_sign).hex()
        if hmac.compare_digest(expected.encode(), signature.encode()):
            break
    else:
        raise AccessDenied(
            "Signature does not match: the request signature we calculated differs from the one "
            "provided. Check the secret access key, the region, and that nothing rewrote the "
            "path, query, signed headers or body on the way."
        )
    return Credential(access_key_id=access_key_id, date=date, region=region, service=service)


def _check_scope(scope: SigningScope, region: str, service: str, host: str) -> None:
    if region != scope.region:
        raise AccessDenied(f"The request is signed for region {region!r}; this server is {scope.region!r}.")
    if service != scope.service:
        raise AccessDenied(f"The request is signed for service {service!r}, not {scope.service!r}.")
    if scope.hosts is not None and not host_allowed(host, scope.hosts):
        raise AccessDenied(f"The request is signed for host {host!r}, which is not this server.")


def _name_and_port(host: str) -> tuple[str, int | None]:
    """``[::1]:8080`` -> ``("::1", 8080)``; ``localhost`` -> ``("localhost", None)``; junk -> ``("", None)``."""
    try:
        parts = urlsplit(f"//{host.strip()}")
        return (parts.hostname or "").lower(), parts.port
    except ValueError:  # a port that is not a number
        return "", None


def host_name(host: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:8080`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    return _name_and_port(host)[0]


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a ``Host`` header names this server: an allowed entry with a port must match exactly,
    one without a port matches the name on any port."""
    name, port = _name_and_port(host or "")
    if not name:
        return False
    for entry in allowed:
        entry_name, entry_port = _name_and_port(entry)
        if entry_name == name and entry_port in (None, port):
            return True
    return False


def canonical_request(
    *,
    method: str,
    raw_path: str,
    canonical_query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    """The SigV4 canonical request, built as botocore's ``SigV4Auth.canonical_request`` does.

    The path is normalized and percent-encoded a second time, exactly as botocore does to the
    already-encoded path it sends: ``/jobs/arn%3Aaws`` is signed as ``/jobs/arn%253Aaws``.
    """
    canonical_headers = "".join(
        f"{name}:{' '.join(headers[name].split())}\n" for name in signed_headers
    )
    return "\n".join([
        method.upper(),
        quote(_remove_dot_segments(raw_path), safe="/~"),
        canonical_query,
        canonical_headers,
        ";".join(signed_headers),
        payload_hash,
    ])


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The per-day, per-region, per-service key derived from a secret access key."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _parse_authorization(authorization: str) -> tuple[str, tuple[str, str, str], list[str], str]:
    """Split the header into access key id, (date, region, service), signed headers, signature."""
    algorithm, _, rest = authorization.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AccessDenied(
            f"Unsupported signing algorithm {algorithm!r}: Tailor accepts only {ALGORITHM}."
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    required = ("Credential", "SignedHeaders", "Signature")
    missing = [name for name in required if not fields.get(name)]
    if missing:
        raise AccessDenied(f"Malformed Authorization header: missing {', '.join(missing)}.")

    scope = fields["Credential"].split("/")
    if (len(scope) != 5 or not all(scope) or scope[4] != "aws4_request"
            or not _CREDENTIAL_DATE.fullmatch(scope[1])):
        raise AccessDenied(
            "Malformed Credential in Authorization header: expected "
            "ACCESS_KEY_ID/YYYYMMDD/region/service/aws4_request."
        )
    signed_headers = fields["SignedHeaders"].split(";")
    # botocore lists them lowercased and sorted; anything else would never verify, so say why now.
    if signed_headers != sorted({name.lower() for name in signed_headers}) or "" in signed_headers:
        raise AccessDenied("Malformed SignedHeaders: names must be lowercase, sorted and unique.")
    if "host" not in signed_headers:
        raise AccessDenied("SignedHeaders must include host.")
    if not _SIGNATURE.fullmatch(fields["Signature"]):
        raise AccessDenied("Malformed Signature in Authorization header: expected 64 hex digits.")
    return scope[0], (scope[1], scope[2], scope[3]), signed_headers, fields["Signature"]


def _request_time(headers: Mapping[str, str], signed_headers: list[str]) -> tuple[datetime, str]:
    """The signed request time and its ``YYYYMMDDTHHMMSSZ`` form, from x-amz-date or else date."""
    if "x-amz-date" in headers:
        name, value = "x-amz-date", headers["x-amz-date"].strip()
        try:
            when = datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise AccessDenied(
                f"Malformed x-amz-date {value!r}: expected YYYYMMDDTHHMMSSZ."
            ) from None
    elif "date" in headers:
        name, value = "date", headers["date"].strip()
        try:
            when = parsedate_to_datetime(value).astimezone(UTC)
        except (TypeError, ValueError):
            raise AccessDenied(f"Malformed Date header {value!r}.") from None
    else:
        raise AccessDenied("Missing x-amz-date (or Date) header: the request time must be signed.")
    if name not in signed_headers:
        raise AccessDenied(f"The {name} header must be listed in SignedHeaders.")
    # The string to sign carries the time in the x-amz-date form even when it came from Date.
    return when, value if name == "x-amz-date" else when.strftime(AMZ_DATE_FORMAT)


def _payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    """The payload line of the canonical request; a declared hash must describe this body."""
    body_hash = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if declared is None:
        return body_hash
    if declared == UNSIGNED_PAYLOAD and body:
        raise AccessDenied("UNSIGNED-PAYLOAD is not accepted for a request with a body: sign the body's hash.")
    if declared != UNSIGNED_PAYLOAD and declared != body_hash:
        raise AccessDenied(
            "The x-amz-content-sha256 header does not match the SHA-256 of the body."
        )
    return declared


def canonical_query_forms(query_string: str) -> list[str]:
    """The canonical query strings botocore may have signed for this raw query, most likely first.

    A boto3 client sends every pair already percent-encoded the SigV4 way and signs the pairs
    verbatim; re-encoding the decoded pairs reproduces the same string. A bare ``AWSRequest``
    built with ``params=`` is sent form-encoded (``+`` for space) yet signed percent-encoded, which
    only the decoded-and-re-encoded form reproduces; a hand-written URL query with characters
    like ``:`` left raw is signed verbatim, which only the verbatim form reproduces. Each form
    fixes the decoded bytes of every key and value, so accepting either lets no change through
    that the application would read differently.
    """
    if not query_string:
        return [""]
    pairs = [pair.partition("=") for pair in query_string.split("&")]
    reencoded = sorted((_reencode(key), _reencode(value)) for key, _, value in pairs)
    verbatim = sorted((key, value) for key, _, value in pairs)
    forms = ["&".join(f"{key}={value}" for key, value in form) for form in (reencoded, verbatim)]
    return forms[:1] if forms[0] == forms[1] else forms


def _reencode(component: str) -> str:
    """A form-encoded query component, decoded to bytes and percent-encoded the SigV4 way."""
    return quote(unquote_to_bytes(component.replace("+", " ")), safe="-_.~")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal plus collapsing of empty segments, as botocore normalizes."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and segments else ""
    return leading + "/".join(segments) + trailing
