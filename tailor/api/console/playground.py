"""The console's Playground: chat with any model the caller can invoke, and compare several side by
side.

The page lists what ``inference.list_invocable`` gives the caller (foundation models, its serving
deployments, its fine-tuned ``ft:`` models), named for people. A chat turn is one
``POST /console/api/playground/chat`` whose body is an OpenAI chat-completions body, read with the
same checks as ``/v1/chat/completions`` (so a bad temperature is a 400 naming ``temperature``) and
answered as that route streams: server-sent ``chat.completion.chunk`` events ending with ``[DONE]``,
an error after the first byte reported in-band, and a last chunk with the token counts. Compare
mode is the browser sending one such request per model at once (static/playground.js).
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from tailor.api import serving
from tailor.api.console.auth import checked, signed_in
from tailor.api.console.pages import ConsoleRoute, render
from tailor.api.openai.routes import log_chat_completion, sse
from tailor.serve.protocol import Completion
from tailor.services import deployments, inference
from tailor.services.console_sessions import ConsoleSession
from tailor.wire import chat_body
from tailor.wire.request_json import parse_json

router = APIRouter(route_class=ConsoleRoute)

DEFAULT_MAX_TOKENS = 256  # the playground's default answer length: short answers, quick compares


def _choices(store, settings, principal: str) -> list[dict]:
    """The models the caller can invoke, grouped and labelled for the model pickers."""
    names = {d["provisionedModelArn"]: (d["provisionedModelName"], "provisioned throughput")
             for d in deployments.list_provisioned_throughputs(store, principal, {})["provisionedModelSummaries"]}
    names.update({d["customModelDeploymentArn"]: (d["customModelDeploymentName"], "on-demand deployment")
                  for d in deployments.list_custom_model_deployments(store, principal, {})["modelDeploymentSummaries"]})
    groups: dict[str, list[dict]] = {"Deployments": [], "Fine-tuned models": [], "Foundation models": []}
    for model_id in inference.list_invocable(store, settings, principal):
        if model_id in names:
            name, kind = names[model_id]
            groups["Deployments"].append({"id": model_id, "label": f"{name} ({kind})"})
        elif model_id.startswith(inference.FINE_TUNED_PREFIX):
            groups["Fine-tuned models"].append({"id": model_id, "label": model_id})
        else:  # an id of the original service runs the local model the operator mapped it to
            alias = settings.model_aliases.get(model_id)
            groups["Foundation models"].append({"id": model_id, "label": f"{model_id} → {alias}" if alias else model_id})
    return [{"group": group, "models": models} for group, models in groups.items() if models]


@router.get("/console/playground", include_in_schema=False)
def index(request: Request, model: str = "", session: ConsoleSession = Depends(signed_in)) -> Response:
    choices = _choices(request.app.state.store, request.app.state.settings, session.principal)
    ids = [entry["id"] for group in choices for entry in group["models"]]
    return render(request, "playground/index.html", {
        "choices": choices, "selected": model if model in ids else (ids[0] if ids else ""),
        "default_max_tokens": DEFAULT_MAX_TOKENS,
    })


@router.get("/console/api/playground/models", include_in_schema=False)
def models_json(request: Request, session: ConsoleSession = Depends(signed_in)) -> dict:
    return {"groups": _choices(request.app.state.store, request.app.state.settings, session.principal)}


@router.post("/console/api/playground/chat", include_in_schema=False)
async def chat(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    """One streamed answer, as ``/v1/chat/completions`` streams it (``openai.routes.chat_completions``),
    and logged as one when the caller has invocation logging on (the original logs its playground's
    calls too)."""
    raw = await request.body()
    body = chat_body.read(parse_json(raw))
    request_chat = chat_body.chat_request(body, default_max_tokens=DEFAULT_MAX_TOKENS)
    model = body.model or ""  # read() requires it
    invocable = await serving.resolve(request.app, session.principal, model)
    events = await serving.answer_stream(request.app, invocable, request_chat)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    chunks = chat_body.ChatChunks(model=model, completion_id=completion_id, created=created, include_usage=True)

    def finished(completion: Completion) -> None:
        answer = chat_body.chat_completion(completion, model=model, completion_id=completion_id, created=created)
        log_chat_completion(request, session.principal, model, raw, answer, completion, body.metadata)

    return StreamingResponse(sse(events, chunks, finished), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

