"""What every chat-shaped request body shares once its fields are valid: whose turn it is, the
prefill, the system prompt, the sampling defaults.

Decisions, so that nobody has to rediscover them:

* **Turns** alternate user, assistant, user, ..., starting with a user message.
* **Prefill**: a conversation may end with an assistant message, which the model continues. The
  ``ChatRequest`` keeps it as its last message; the engine continues that message instead of
  opening a new turn, and the answer holds only the continuation, as in the original. Its text may
  not end in whitespace (the original's rule); an empty final assistant message is dropped, since
  continuing nothing is an ordinary request. Every other message must have text.
* **Several text blocks** in one message are joined with ``BLOCK_SEPARATOR`` (a newline).
* **Sampling defaults**: a request that does not set a temperature is answered greedily
  (``DEFAULT_TEMPERATURE`` = 0), not with each original's default (1.0 Anthropic and OpenAI, 0.7
  Titan, 0.9 Cohere, 0.5 Llama): Tailor's users compare a fine-tuned model with its base, and a
  comparison needs answers that stay the same run to run. Explicit values pass through unchanged
  (all these temperatures are the softmax temperature the engine applies).
"""

from __future__ import annotations

from collections.abc import Sequence

from tailor.serve.protocol import Message

BLOCK_SEPARATOR = "\n"
DEFAULT_TEMPERATURE = 0.0


def turn_problems(roles: Sequence[str], texts: Sequence[str]) -> list[tuple[str, str]]:
    """What breaks the turn rules in a list of messages, as ``("[index].role" or "[index].content",
    problem)``, paths relative to the list."""
    problems = []
    last = len(roles) - 1
    for index, (role, text) in enumerate(zip(roles, texts, strict=True)):
        if index == 0 and role != "user":
            problems.append((f"[{index}].role", f"the first message must be a user message, got {role!r}"))
        elif index > 0 and role == roles[index - 1]:
            problems.append((f"[{index}].role",
                             f"roles must alternate between user and assistant, but the message before is also {role!r}"))
        if index == last and role == "assistant":
            if text != text.rstrip():
                problems.append((f"[{index}].content",
                                 "a final assistant message (prefill) cannot end with whitespace"))
        elif not text.strip():
            problems.append((f"[{index}].content", "must not be empty (only a final assistant message may be)"))
    return problems


def messages(system: str, roles: Sequence[str], texts: Sequence[str]) -> tuple[Message, ...]:
    """The ``ChatRequest`` messages: the system prompt (if it has text), then the turns, without an
    empty prefill."""
    turns = [Message(role, text) for role, text in zip(roles, texts, strict=True)]  # type: ignore[arg-type]
    if turns and turns[-1].role == "assistant" and not turns[-1].content:
        turns.pop()  # an empty prefill continues nothing: an ordinary request
    head = (Message("system", system),) if system.strip() else ()
    return head + tuple(turns)
