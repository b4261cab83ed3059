"""What both inference dialects (bedrock-runtime, OpenAI) do between parsing and answering.

Find the weights a model id names (``tailor.services.inference``), wait for one of the
deployment's slots (its model units), and run the request on the engine. A prompt longer than
``max_prompt_characters`` is refused first, before it waits for a slot or travels to the engine
(whose tokenizing of it would otherwise cost seconds). ``answer_stream``
waits for the engine's first event before returning, so that an error found before any text
(a prompt over the context window, a model that cannot load) is answered with a proper error
status instead of a stream that breaks off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from tailor.serve.protocol import ChatRequest, Completion, TextDelta, check_prompt_size
from tailor.services import inference
from tailor.services.inference import Invocable

Event = TextDelta | Completion


async def resolve(app: FastAPI, principal: str, model_id: str) -> Invocable:
    return await run_in_threadpool(inference.resolve, app.state.store, app.state.settings, principal, model_id)


def _slots(app: FastAPI, invocable: Invocable) -> asyncio.Semaphore | None:
    """The deployment's semaphore: ``modelUnits x slots_per_model_unit`` requests at once."""
    if invocable.concurrency_key is None:
        return None
    slots: dict = app.state.slots
    key = (invocable.concurrency_key, invocable.concurrency)
    if key not in slots:
        slots[key] = asyncio.Semaphore(invocable.concurrency)
    return slots[key]


async def answer(app: FastAPI, invocable: Invocable, chat: ChatRequest) -> Completion:
    check_prompt_size(chat, app.state.settings.max_prompt_characters)
    async with AsyncExitStack() as stack:
        if (semaphore := _slots(app, invocable)) is not None:
            await stack.enter_async_context(semaphore)
        return await app.state.engine.complete(invocable.target, chat, app.state.settings.inference_timeout_seconds)


async def answer_stream(app: FastAPI, invocable: Invocable, chat: ChatRequest) -> AsyncIterator[Event]:
    """The engine's events; the first one is already received (errors raised here, not mid-stream)."""
    check_prompt_size(chat, app.state.settings.max_prompt_characters)
    stack = AsyncExitStack()
    if (semaphore := _slots(app, invocable)) is not None:
        await stack.enter_async_context(semaphore)
    events = app.state.engine.stream(invocable.target, chat, app.state.settings.inference_timeout_seconds)
    try:
        first = await anext(events)
    except BaseException:
        await stack.aclose()
        raise

    async def replay() -> AsyncIterator[Event]:
        try:
            yield first
            async for event in events:
                yield event
        finally:
            await events.aclose()
            await stack.aclose()

    return replay()
