"""``client.fine_tuning.alpha.graders.validate(grader=...)`` and ``.run(grader=..., model_sample=...,
item=...)``: check a grader object, and try it on one answer, before a reinforcement job uses it.
The graders themselves are ``tailor.graders.openai``'.

A ``score_model`` or ``label_model`` grader's judge is a model this server runs (or a remote model
its operator configured): here it answers through the server's own engine, as chat completions
do, rather than through a second engine in the API process.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from tailor.api import serving
from tailor.api.openai.common import error_response, principal_of
from tailor.errors import InvalidInput, TailorError
from tailor.evaluate.backends import Failure, remote_backend
from tailor.graders import openai as openai_graders
from tailor.serve.protocol import ChatRequest, Message, Sampling
from tailor.services import inference
from tailor.wire.request_json import parse_json


def add_routes(app: FastAPI) -> None:
    app.add_api_route("/v1/fine_tuning/alpha/graders/validate", validate_grader, methods=["POST"],
                      name="openai.fine_tuning.alpha.graders.validate")
    app.add_api_route("/v1/fine_tuning/alpha/graders/run", run_grader, methods=["POST"],
                      name="openai.fine_tuning.alpha.graders.run")


async def _body(request: Request) -> tuple[str, dict]:
    principal = await principal_of(request)
    body = parse_json(await request.body())
    if not isinstance(body, dict) or "grader" not in body:
        raise InvalidInput("grader: required.", param="grader")
    return principal, body


async def validate_grader(request: Request) -> Response:
    try:
        _, body = await _body(request)
        settings = request.app.state.settings
        grader = await run_in_threadpool(openai_graders.validate, body["grader"], settings)
        return JSONResponse({"grader": openai_graders.to_json(grader)})
    except Exception as error:
        return error_response(error)


async def run_grader(request: Request) -> Response:
    try:
        principal, body = await _body(request)
        unknown = set(body) - {"grader", "model_sample", "item"}
        if unknown:
            raise InvalidInput(f"{sorted(unknown)[0]}: unknown field.", param=sorted(unknown)[0])
        if not isinstance(body.get("model_sample"), str):
            raise InvalidInput("model_sample: a string is required.", param="model_sample")
        judges = served_judges(request.app, asyncio.get_running_loop(), principal)
        result = await run_in_threadpool(openai_graders.run, body["grader"], sample_text=body["model_sample"],
                                         item=body.get("item"), settings=request.app.state.settings, judges=judges)
        return JSONResponse(result)
    except Exception as error:
        return error_response(error)


def served_judges(app: FastAPI, loop: asyncio.AbstractEventLoop, principal: str):
    """Judges for a grader run from a worker thread: remote models as configured, the server's own
    models through its engine (the thread waits on the server's event loop)."""
    settings = app.state.settings

    def open_judge(model: str) -> Any:
        if model in settings.remote_models:
            return remote_backend(model, settings.remote_models[model], settings.inference_timeout_seconds)
        return _ServedJudge(app, loop, inference.resolve(app.state.store, settings, principal, model))

    return open_judge


class _ServedJudge:
    """A ``tailor.evaluate.backends.Backend`` answering through the server's engine."""

    def __init__(self, app: FastAPI, loop: asyncio.AbstractEventLoop, invocable: inference.Invocable):
        self.app, self.loop, self.invocable = app, loop, invocable
        self.label = invocable.model_id

    def chat(self, conversations, generation, on_reply=None):
        sampling = Sampling(max_tokens=generation.max_tokens, temperature=generation.temperature,
                            top_p=generation.top_p, stop=tuple(generation.stop), seed=0)
        replies = []
        for conversation in conversations:
            chat = ChatRequest(tuple(Message(turn["role"], turn["content"]) for turn in conversation), sampling)
            future = asyncio.run_coroutine_threadsafe(serving.answer(self.app, self.invocable, chat), self.loop)
            try:
                replies.append(future.result().text)
            except TailorError as error:
                replies.append(Failure(error.message))
            if on_reply:
                on_reply()
        return replies
