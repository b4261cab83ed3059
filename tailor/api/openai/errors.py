"""OpenAI's error envelope, ``{"error": {"message", "type", "param", "code"}}``, for Tailor's errors.

The status, ``type`` and ``code`` of each domain error come from ``tailor.api.errors.HTTP_ERRORS``,
the table both dialects read. An ``InvalidFields`` names its first field as ``param`` and lists
its problems in OpenAI's words: one problem is ``field: problem``, several are counted first.
"""

from __future__ import annotations

import logging

from tailor.api.errors import (
    INTERNAL,
    INTERNAL_MESSAGE,
    http_error,
    writable,
)
from tailor.errors import InvalidFields

logger = logging.getLogger(__name__)


def message_of(error: BaseException) -> str:
    if isinstance(error, InvalidFields):
        lines = [f"{path}: {problem}" for path, problem in error.problems]
        return lines[0] if len(lines) == 1 else f"{len(lines)} problems in the request:\n  " + "\n  ".join(lines)
    return getattr(error, "message", None) or str(error)


def error_body(error: BaseException) -> tuple[int, dict]:
    """``(HTTP status, {"error": {"message", "type", "param", "code"}})`` for ``error``.

    An exception that is not a known Tailor error is a bug: the client gets a generic 500
    ``server_error`` and the traceback goes to the log.
    """
    found = http_error(error)
    if found is INTERNAL:
        logger.error("internal error answered as server_error", exc_info=error)
        return found.openai_status, envelope(INTERNAL_MESSAGE, found.openai_type, found.openai_code)
    return found.openai_status, envelope(message_of(error), found.openai_type, found.openai_code,
                                         getattr(error, "param", None))


def envelope(message: str, kind: str, code: str | None, param: str | None = None) -> dict:
    """``{"error": {"message", "type", "param", "code"}}``, its text made writable: a message echoing
    client text may hold a lone surrogate, which no UTF-8 encoder accepts; it becomes an escape."""
    return {"error": {"message": writable(message), "type": kind,
                      "param": writable(param) if isinstance(param, str) else param, "code": code}}
