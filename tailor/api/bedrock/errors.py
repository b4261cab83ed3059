"""The AWS rest-json error envelope: Tailor's domain errors as botocore expects to read them.

botocore's ``RestJSONParser`` takes the error code from the ``x-amzn-ErrorType`` header (keeping
what precedes a ``:`` and follows a ``#``, so ``ValidationException:http://...`` also works) and
the message from the body's ``message`` (or ``Message``) key; boto3 then raises the modeled
exception class (``client.exceptions.ValidationException``, a ``ClientError``) with
``error.response["Error"] == {"Code": ..., "Message": ...}``.

Which code and status each domain error gets is ``tailor.api.errors.HTTP_ERRORS``, the table
both dialects read. Only an error with a known meaning shows its message; anything else is a bug
and reaches the client as a generic ``InternalServerException`` while the traceback goes to the log.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

from tailor.api.errors import INTERNAL, INTERNAL_MESSAGE, http_error, writable

logger = logging.getLogger(__name__)


def error_code(error: BaseException) -> tuple[str, int]:
    """``(code, status)`` for an exception: its nearest class in the table, else InternalServerException."""
    found = http_error(error)
    return found.aws_code, found.aws_status


def error_response(error: BaseException) -> tuple[int, dict[str, str], dict[str, str]]:
    """``(status, headers, JSON body)`` of the error response for ``error``."""
    found = http_error(error)
    if found is INTERNAL:
        logger.error("internal error answered as %s", found.aws_code, exc_info=error)
        message = INTERNAL_MESSAGE
    else:
        message = getattr(error, "message", None) or str(error)
    return envelope(found.aws_code, found.aws_status, message)


def error_json(error: BaseException) -> JSONResponse:
    """The error response for ``error``, ready to return from a route."""
    status, headers, body = error_response(error)
    return JSONResponse(body, status_code=status, headers=headers)


def envelope(code: str, status: int, message: str) -> tuple[int, dict[str, str], dict[str, str]]:
    """``(status, headers, JSON body)`` of an error with this code and message, its text made
    writable (``tailor.api.errors.writable``: an echoed lone surrogate becomes an escape)."""
    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
    return status, headers, {"message": writable(message)}
