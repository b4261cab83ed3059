"""How Tailor's domain errors leave over HTTP, in both dialects: one table, and what both write.

``HTTP_ERRORS`` maps each domain error class to its answer in the AWS dialect (the error code in
``x-amzn-ErrorType`` and its status, as the bedrock models declare them) and in OpenAI's (status,
``type`` and ``code`` of the ``{"error": ...}`` envelope). A subclass (``InvalidHyperparameters``)
answers like its nearest listed ancestor; anything unlisted is a bug and answers ``INTERNAL``.
The two dialects' envelopes (``tailor.api.bedrock.errors``, ``tailor.api.openai.errors``) read
this table and nothing else, so a new error class is mapped once for both.

``InvalidFields`` (``tailor.errors``) is the invalid request whose problems are known field by
field: both dialects render it in their own words (AWS's "N validation errors detected", OpenAI's
``param``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor.errors import (
    AccessDenied,
    Conflict,
    InvalidInput,
    ModelFailed,
    ModelNotReady,
    ModelTimeout,
    ModelUnavailable,
    NotFound,
    QuotaExceeded,
    Unauthenticated,
)


@dataclass(frozen=True)
class HttpError:
    """One domain error's answer in each dialect."""

    aws_code: str
    aws_status: int
    openai_status: int
    openai_type: str
    openai_code: str | None


# Why some statuses differ between the dialects:
# - ModelUnavailable is a validation error: the request names a model this server cannot load,
#   which stays so until someone configures it (a 5xx would make boto3 retry in vain).
# - Conflict and ModelUnavailable answer OpenAI clients 400, not 409/503: the openai client
#   retries 409 and 5xx, and neither condition goes away by sending the same request again.
# - ModelNotReady, ModelTimeout and ModelFailed pass with time, so OpenAI clients get statuses
#   they retry; the AWS codes and statuses are bedrock-runtime's own.
HTTP_ERRORS: dict[type[Exception], HttpError] = {
    InvalidInput: HttpError("ValidationException", 400, 400, "invalid_request_error", "invalid_value"),
    ModelUnavailable: HttpError("ValidationException", 400, 400, "invalid_request_error", "model_unavailable"),
    NotFound: HttpError("ResourceNotFoundException", 404, 404, "invalid_request_error", "not_found"),
    Conflict: HttpError("ConflictException", 400, 400, "invalid_request_error", "conflict"),
    # OpenAI answers too many active fine-tuning jobs with 429 (the SDK's RateLimitError).
    QuotaExceeded: HttpError("ServiceQuotaExceededException", 400, 429, "rate_limit_exceeded", "quota_exceeded"),
    AccessDenied: HttpError("AccessDeniedException", 403, 403, "invalid_request_error", "permission_denied"),
    # AWS answers a bad signature with the same 403; OpenAI's clients tell a bad key (401) apart.
    Unauthenticated: HttpError("AccessDeniedException", 403, 401, "invalid_request_error", "invalid_api_key"),
    ModelNotReady: HttpError("ModelNotReadyException", 429, 503, "server_error", "model_not_ready"),
    ModelTimeout: HttpError("ModelTimeoutException", 408, 408, "server_error", "timeout"),
    ModelFailed: HttpError("ModelErrorException", 424, 502, "server_error", "model_error"),
}
INTERNAL = HttpError("InternalServerException", 500, 500, "server_error", None)
INTERNAL_MESSAGE = "Tailor hit an internal error; the server log has the details."


def http_error(error: BaseException) -> HttpError:
    """The answer for ``error``: its nearest class in ``HTTP_ERRORS``, else ``INTERNAL``."""
    for cls in type(error).__mro__:
        if cls in HTTP_ERRORS:
            return HTTP_ERRORS[cls]
    return INTERNAL


def writable(text: str) -> str:
    """``text`` with whatever UTF-8 cannot encode (lone surrogates) written as backslash escapes.

    Text a client sent may hold a lone surrogate (JSON's ``"\\ud800"``), which no UTF-8 encoder
    accepts, and an error echoing it must still be sent.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
