"""AWS event-stream framing: the binary messages of InvokeModelWithResponseStream and ConverseStream.

Both streaming runtime operations answer with ``application/vnd.amazon.eventstream``: a sequence
of self-delimiting binary messages that botocore decodes (``botocore.eventstream``) into the
``EventStream`` a boto3 user iterates. One message is::

    prelude:  total length (uint32) · headers length (uint32) · CRC32 of those 8 bytes
    headers:  name length (uint8) · name · type (7 = string) · value length (uint16) · value, repeated
    payload:  bytes (here always JSON)
    message CRC32 of everything before it

All integers are big-endian; the CRCs are plain CRC-32 (``zlib.crc32``). Tailor only ever writes
string headers. Events carry ``:message-type: event`` and the member name of the stream's union
as ``:event-type``; modeled errors carry ``:message-type: exception`` and ``:exception-type``,
which botocore raises as ``EventStreamError`` (a ``ClientError``) with that code and the payload's
``message``.

bedrock-runtime's ``chunk`` event (the ``PayloadPart`` shape) has one blob member, ``bytes``, and
no ``eventpayload`` trait, so its payload is the JSON ``{"bytes": "<base64>"}`` that botocore's
rest-json event parser base64-decodes back into ``event["chunk"]["bytes"]``; the decoded bytes are
the model's native stream event as JSON.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")
_STRING_HEADER = 7
_MAX_HEADER_NAME = 255          # the name length is one byte
_MAX_HEADER_VALUE = 32767       # botocore reads the value length as a signed int16
_MAX_PAYLOAD = 24 * 1024 * 1024  # botocore refuses larger payloads
MAX_CHUNK_BYTES = 1_000_000     # PartBody's max in the bedrock-runtime model

CONTENT_TYPE = "application/vnd.amazon.eventstream"


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string ``headers`` and ``payload``, both CRCs included."""
    encoded_headers = b"".join(_encode_header(name, value) for name, value in headers.items())
    if len(payload) > _MAX_PAYLOAD:
        raise ValueError(f"event-stream payload of {len(payload)} bytes exceeds {_MAX_PAYLOAD}")
    total_length = _PRELUDE.size + _CRC.size + len(encoded_headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total_length, len(encoded_headers))
    message = prelude + _CRC.pack(zlib.crc32(prelude)) + encoded_headers + payload
    return message + _CRC.pack(zlib.crc32(message))


def _encode_header(name: str, value: str) -> bytes:
    name_bytes = name.encode("utf-8")
    value_bytes = value.encode("utf-8")
    if not 0 < len(name_bytes) <= _MAX_HEADER_NAME:
        raise ValueError(f"event-stream header name {name!r} must be 1-{_MAX_HEADER_NAME} bytes")
    if len(value_bytes) > _MAX_HEADER_VALUE:
        raise ValueError(f"event-stream header {name!r} value exceeds {_MAX_HEADER_VALUE} bytes")
    return (bytes([len(name_bytes)]) + name_bytes + bytes([_STRING_HEADER])
            + struct.pack(">H", len(value_bytes)) + value_bytes)


def _json_bytes(value: Any) -> bytes:
    # Compact and UTF-8, as the original sends; ensure_ascii off keeps non-English text short.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def event(event_type: str, payload: dict) -> bytes:
    """A modeled event (``messageStart``, ``chunk``, ...) whose members are ``payload``."""
    headers = {":message-type": "event", ":event-type": event_type, ":content-type": "application/json"}
    return encode_message(headers, _json_bytes(payload))


def exception(exception_type: str, message: str) -> bytes:
    """A modeled in-stream error (``modelStreamErrorException``, ``validationException``, ...).

    boto3 raises it from the iterator as ``botocore.exceptions.EventStreamError`` with
    ``response["Error"] == {"Code": exception_type, "Message": message}``.
    """
    headers = {":message-type": "exception", ":exception-type": exception_type,
               ":content-type": "application/json"}
    return encode_message(headers, _json_bytes({"message": message}))


def chunk(native: dict) -> bytes:
    """An InvokeModelWithResponseStream ``chunk`` event carrying one native stream event as JSON."""
    data = _json_bytes(native)
    if len(data) > MAX_CHUNK_BYTES:
        raise ValueError(f"a chunk holds at most {MAX_CHUNK_BYTES} bytes, got {len(data)}")
    return event("chunk", {"bytes": base64.b64encode(data).decode("ascii")})
