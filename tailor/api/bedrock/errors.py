"""The AWS rest-json error envelope: Tailor's domain errors as botocore expects to read them.

botocore's ``RestJSONParser`` takes the error code from the ``x-amzn-ErrorType`` header (keeping
what precedes a ``:`` and follows a ``#``, so ``ValidationException:http://...`` also works) and
the message from the body's ``message`` (or ``Message``) key; boto3 then raises the modeled
exception class (``client.exceptions.ValidationException``, a ``ClientError``) with
``error.response["Error"] == {"Code": ..., "Message": ...}``.

Only a ``TailorError`` with a known meaning shows its message; anything else is a bug and reaches
the client as a generic ``InternalServerException`` while the traceback goes to the log.
"""

from __future__ import annotations

import logging

from tailor.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    ModelFailed,
    ModelNotReady,
    ModelTimeout,
    ModelUnavailable,
    NotFound,
)

logger = logging.getLogger(__name__)

# Domain error class -> (error code, HTTP status), as the bedrock model declares each code. A
# subclass (InvalidHyperparameters) maps like its nearest listed ancestor. ModelUnavailable is a
# validation error here: the request names a model this deployment cannot load, which is
# permanent until someone configures it (a 5xx would make boto3 retry in vain).
ERROR_CODES: dict[type[Exception], tuple[str, int]] = {
    InvalidInput: ("ValidationException", 400),
    ModelUnavailable: ("ValidationException", 400),
    NotFound: ("ResourceNotFoundException", 404),
    Conflict: ("ConflictException", 400),
    AccessDenied: ("AccessDeniedException", 403),
    # bedrock-runtime only:
    ModelNotReady: ("ModelNotReadyException", 429),
    ModelTimeout: ("ModelTimeoutException", 408),
    ModelFailed: ("ModelErrorException", 424),
}
INTERNAL_ERROR: tuple[str, int] = ("InternalServerException", 500)
INTERNAL_MESSAGE = "Tailor hit an internal error; the server log has the details."


def error_code(error: Exception) -> tuple[str, int]:
    """``(code, status)`` for an exception: its nearest class in ``ERROR_CODES``, else ``INTERNAL_ERROR``."""
    for cls in type(error).__mro__:
        if cls in ERROR_CODES:
            return ERROR_CODES[cls]
    return INTERNAL_ERROR


def error_response(error: Exception) -> tuple[int, dict[str, str], dict[str, str]]:
    """``(status, headers, JSON body)`` of the error response for ``error``."""
    code, status = error_code(error)
    if (code, status) == INTERNAL_ERROR:
        logger.error("internal error answered as %s", code, exc_info=error)
        message = INTERNAL_MESSAGE
    else:
        message = getattr(error, "message", None) or str(error)
    return envelope(code, status, message)


def envelope(code: str, status: int, message: str) -> tuple[int, dict[str, str], dict[str, str]]:
    """``(status, headers, JSON body)`` of an error with this code and message.

    The message is made writable first: text a client sent may hold a lone surrogate (JSON's
    ``"\\ud800"``), which no UTF-8 encoder accepts, and an error echoing it must still be sent --
    so such characters become ``\\udXXX`` escapes instead of failing the response.
    """
    headers = {"x-amzn-ErrorType": code, "Content-Type": "application/json"}
    return status, headers, {"message": writable(message)}


def writable(text: str) -> str:
    """``text`` with whatever UTF-8 cannot encode (lone surrogates) written as backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
