"""CountTokens: the conversation whose prompt it counts, from ``params["input"]`` (a CountTokensInput).

``input.invokeModel.body`` is a native InvokeModel body of the model's dialect; ``input.converse``
holds Converse's ``messages`` and ``system``. Each is read exactly as the real request would be,
sampling settings included (they play no part in the count, but a body the real request would
refuse is refused here too), and a problem is named by its full path from ``input``. Pure.
"""

from __future__ import annotations

from tailor.errors import InvalidFields, show_value
from tailor.serve.protocol import ChatRequest
from tailor.wire.converse import converse_request
from tailor.wire.invoke import parse_invoke_body


def count_tokens_request(params: dict, *, kind: str, default_max_tokens: int = 1) -> ChatRequest:
    """The ``ChatRequest`` whose prompt CountTokens counts; ``kind`` is the model's body dialect and
    ``default_max_tokens`` fills in a missing length as the real request's would."""
    chosen = params.get("input")
    # The contract makes CountTokensInput a union; checked again so that this holds without it.
    if not isinstance(chosen, dict) or len([key for key in chosen if chosen[key] is not None]) != 1:
        raise InvalidFields([("input", "must set exactly one of invokeModel, converse")])
    if chosen.get("invokeModel") is not None:
        invoke = chosen["invokeModel"]
        body = invoke.get("body") if isinstance(invoke, dict) else None
        if body is None:
            raise InvalidFields([("input.invokeModel.body", "required")])
        try:
            return parse_invoke_body(kind, body, default_max_tokens=default_max_tokens)
        except InvalidFields as error:
            raise error.under("input.invokeModel.body") from None
    converse = chosen.get("converse")
    if not isinstance(converse, dict):
        raise InvalidFields([("input.converse", f"must be an object, got {show_value(converse)}")])
    try:
        return converse_request(converse, default_max_tokens=default_max_tokens)
    except InvalidFields as error:
        raise error.under("input.converse") from None
