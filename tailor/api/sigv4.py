"""Verify AWS Signature Version 4 on incoming requests, so unchanged boto3 clients can call Tailor.

boto3 signs every request with SigV4: an HMAC chain keyed by the secret access key over a
*canonical request* (method, path, query, chosen headers, body hash). The server checks a
signature by computing it again, with botocore's own signer (``botocore.auth.SigV4Auth``) run on
an ``AWSRequest`` rebuilt from what arrived: the path as it came over the wire (still
percent-encoded, which botocore encodes once more -- an ARN sent as ``arn%3Aaws...%2Fabc`` is
signed as ``arn%253Aaws...%252Fabc``, so callers must pass the raw path), the raw query, exactly
the headers named in ``SignedHeaders``, the body, and the signed time. What botocore computes is,
by construction, what a botocore client signed.

The query has two forms to try, because botocore has two ways to sign one: a boto3 client puts
the query in the URL already encoded and signs those pairs verbatim, while an
``AWSRequest(params=...)`` is sent form-encoded (space as ``+``) but signed with ``%20``. A
request verifies if it matches either form; each fixes the decoded bytes of every key and value,
so accepting either lets no change through that the application would read differently.

Tailor's own checks come around that computation:

* **For this server** (``SigningScope``): the signed ``Host`` one this server answers to, the
  credential scope's region this server's region and its service ``bedrock`` (the signing name of
  both botocore models). A request signed for another host, region or service cannot be replayed.
* **Fresh**: the signed request time (``x-amz-date``, else ``Date``) within 15 minutes of the
  server's clock, and the credential scope's day that time's.
* **The body is signed**: ``x-amz-content-sha256``, when sent, must match the body; its
  ``UNSIGNED-PAYLOAD`` marker is accepted only for a request without a body, or a swapped body
  would pass.
* **Readable**: the path and query must read back as the URL botocore is given (a raw ``#``, say,
  would make it sign less than the application reads).

Every failure raises ``AccessDenied`` with a message saying what was wrong (the app answers
every caller one message and logs this one); no message ever contains the expected signature or
a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes, urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

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

    _check_payload_hash(headers, body)
    signer = SigV4Auth(Credentials(access_key_id, secret), service, region)
    for request in signed_forms(method=method, raw_path=raw_path, query_string=query_string, headers=headers,
                                signed_headers=signed_headers, body=body, timestamp=timestamp):
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
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


# The host botocore is shown in the URL: any, as the signed Host header is what it signs. (http:
# so that botocore hashes the body, which it may skip for https.)
_URL_BASE = "http://signed.invalid"
# Only to compare the two query forms, which need no credentials.
_QUERY_SIGNER = SigV4Auth(None, "bedrock", "us-east-1")


def signed_forms(*, method: str, raw_path: str, query_string: str, headers: Mapping[str, str],
                 signed_headers: list[str], body: bytes, timestamp: str) -> list[AWSRequest]:
    """The request as botocore may have signed it: one ``AWSRequest`` per way it may have signed
    the query, most likely first (see the module docstring), carrying the signed headers only and
    the signed time (``timestamp``, ``YYYYMMDDTHHMMSSZ``) where ``SigV4Auth`` reads it."""
    url = f"{_URL_BASE}{raw_path}" + (f"?{query_string}" if query_string else "")
    parts = urlsplit(url)
    if parts.path != raw_path or parts.query != query_string or parts.fragment:
        raise AccessDenied("The request path or query cannot be read as a URL, so its signature cannot be checked.")
    # Only the signed headers: botocore signs every header it is given (but those in its
    # SIGNED_HEADERS_BLACKLIST, which _parse_authorization refuses to see signed).
    signed = {name: headers[name] for name in signed_headers}
    forms = [AWSRequest(method=method, url=url, headers=signed, data=body)]
    decoded = _decoded_pairs(query_string)
    if decoded is not None and _QUERY_SIGNER.canonical_query_string(
            AWSRequest(url=url)) != _QUERY_SIGNER.canonical_query_string(AWSRequest(params=decoded)):
        forms.append(AWSRequest(method=method, url=f"{_URL_BASE}{raw_path}", headers=signed, data=body,
                                params=decoded))
    for request in forms:
        request.context["timestamp"] = timestamp
    return forms


def _decoded_pairs(query_string: str) -> list[tuple[str, str]] | None:
    """The query's pairs decoded as a form (``+`` is a space), or None when that cannot be what
    ``AWSRequest(params=...)`` was given: the params are text, so their bytes are UTF-8."""
    if not query_string:
        return None
    pairs = []
    for pair in query_string.split("&"):
        key, _, value = pair.partition("=")
        try:
            pairs.append((unquote_to_bytes(key.replace("+", " ")).decode("utf-8"),
                          unquote_to_bytes(value.replace("+", " ")).decode("utf-8")))
        except UnicodeDecodeError:
            return None
    return pairs


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
    if unsignable := [name for name in signed_headers if name in SIGNED_HEADERS_BLACKLIST]:
        # Headers that proxies may change on the way; SigV4 signers (botocore included) leave them out.
        raise AccessDenied(f"SignedHeaders lists {', '.join(unsignable)}, which SigV4 signers leave out "
                           "because they may change on the way; sign without them.")
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


def _check_payload_hash(headers: Mapping[str, str], body: bytes) -> None:
    """A declared ``x-amz-content-sha256`` must describe this body."""
    declared = headers.get("x-amz-content-sha256")
    if declared is None:
        return
    if declared == UNSIGNED_PAYLOAD and body:
        raise AccessDenied("UNSIGNED-PAYLOAD is not accepted for a request with a body: sign the body's hash.")
    if declared != UNSIGNED_PAYLOAD and declared != hashlib.sha256(body).hexdigest():
        raise AccessDenied(
            "The x-amz-content-sha256 header does not match the SHA-256 of the body."
        )
