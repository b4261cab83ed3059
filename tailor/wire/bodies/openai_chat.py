"""The OpenAI chat-completions body on Bedrock, for families whose native body has that shape
(Tailor's own; imported Qwen / GPT-OSS style models): ``tailor.wire.chat_body`` with the model
named by the URL, not the body; answers are ``chat.completion`` objects and chunks."""

from __future__ import annotations

import time
from typing import Any

from tailor.serve.protocol import ChatRequest, Completion
from tailor.wire import chat_body
from tailor.wire.bodies import Invocation


def request(data: Any, *, default_max_tokens: int) -> ChatRequest:
    body = chat_body.read(data, require_model=False)
    return chat_body.chat_request(body, default_max_tokens=default_max_tokens)


def _created(invocation: Invocation) -> int:
    return int(time.time()) if invocation.created is None else invocation.created


def response(completion: Completion, invocation: Invocation) -> dict:
    return chat_body.chat_completion(completion, model=invocation.model_id,
                                     completion_id=f"chatcmpl-{invocation.request_id}", created=_created(invocation))


class Stream:
    """``chat.completion.chunk`` objects: the role, content deltas, the finish reason."""

    def __init__(self, invocation: Invocation):
        self.chunks = chat_body.ChatChunks(model=invocation.model_id, completion_id=f"chatcmpl-{invocation.request_id}",
                                           created=_created(invocation))

    def start(self, input_tokens: int) -> list[dict]:
        return self.chunks.start()

    def delta(self, text: str) -> list[dict]:
        return self.chunks.delta(text)

    def finish(self, completion: Completion) -> list[dict]:
        return self.chunks.finish(completion)
