"""The shared half of the judge graders (RLAIF): a judge model rates each sample 1–10.

The judge templates (``tailor graders templates``) each write the *prompt* (what to judge, the
criteria, the scoring guidelines) and hand it to ``judge_batch``, which does the rest the same way
for all of them — and the same way as evaluation's judge metrics (DESIGN rule 8), from the same
code: the judge's system prompt, the demanded reply form (reasoning, then ``Rating: N``), one
re-ask when the reply does not parse, the parsing itself (``tailor.evaluate.judge.parse_rating``)
and the scale (``normalized``: 1 → 0.0, 10 → 1.0).

The judge is any OpenAI-compatible chat-completions API, by default Tailor's own serving API:

``TAILOR_JUDGE_URL``      base URL, default ``http://127.0.0.1:8080/v1`` (``/chat/completions`` is added)
``TAILOR_JUDGE_MODEL``    the judge model: a model id, custom model or deployment name (required)
``TAILOR_JUDGE_API_KEY``  bearer key (for Tailor: the ``api_key`` that ``tailor keys create`` prints)

Set them in the environment of the process that trains (the server), or per grader with
``tailor graders create ... --env TAILOR_JUDGE_MODEL=...``.

A judge that cannot be reached, is not configured, or gives no parsable rating scores the sample
0.0 with a ``judge_error`` metric of 1 and the reason on stderr (the grader's log) — never a
made-up score.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from tailor.evaluate.backends import Failure, OpenAIModel
from tailor.evaluate.judge import FORM, JUDGE_GENERATION, REMINDER, SYSTEM, normalized, parse_rating

URL_VARIABLE = "TAILOR_JUDGE_URL"
MODEL_VARIABLE = "TAILOR_JUDGE_MODEL"
KEY_VARIABLE = "TAILOR_JUDGE_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8080/v1"
LONGEST_REQUEST_SECONDS = 120.0
_MARGIN_SECONDS = 1.0  # left to the grader to return its results before its own timeout


def judge_batch(event: list[dict], build_prompt: Callable[[dict], str], *, metric: str,
                context: Any = None, retries: int = 1) -> list[dict]:
    """The results list for ``event``: each sample's reward is the judge's rating of the prompt
    ``build_prompt(sample)`` returns (the reply form is appended here), named ``metric``."""
    model = os.environ.get(MODEL_VARIABLE)
    if not model:
        return [_judge_failed(item, f"{MODEL_VARIABLE} is not set: name the judge model") for item in event]
    judge = OpenAIModel(f"judge {model}", model, os.environ.get(URL_VARIABLE) or DEFAULT_URL,
                        api_key=os.environ.get(KEY_VARIABLE), timeout_s=_request_timeout(context))
    conversations = [[{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": f"{build_prompt(item).strip()}\n\n{FORM}"}] for item in event]
    replies = judge.chat(conversations, JUDGE_GENERATION)
    parsed = [parse_rating(reply) if isinstance(reply, str) else None for reply in replies]
    for _ in range(retries):
        again = [i for i, rating in enumerate(parsed) if rating is None and isinstance(replies[i], str)]
        if not again:
            break
        # Ask again in the same conversation: the judge sees its reply and what was wrong with it.
        retry = [conversations[i] + [{"role": "assistant", "content": replies[i]},
                                     {"role": "user", "content": REMINDER}] for i in again]
        for i, reply in zip(again, judge.chat(retry, JUDGE_GENERATION)):
            replies[i] = reply
            parsed[i] = parse_rating(reply) if isinstance(reply, str) else None
    results = []
    for item, reply, rating in zip(event, replies, parsed):
        if rating is None:
            results.append(_judge_failed(item, _why(reply, retries + 1)))
            continue
        score = normalized(rating[0])
        results.append({
            "id": item["id"],
            "aggregate_reward_score": score,
            "metrics_list": [{"name": metric, "value": score, "type": "Reward"},
                             {"name": "judge_rating", "value": rating[0], "type": "Metric"},
                             {"name": "judge_error", "value": 0.0, "type": "Metric"}],
            "judge_reasoning": rating[1],  # an extra key: the original contract tolerates them
        })
    return results


def _request_timeout(context: Any) -> float:
    """Each judge request may use the time the grader has left, less a margin to answer."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return LONGEST_REQUEST_SECONDS
    return max(1.0, min(LONGEST_REQUEST_SECONDS, remaining() / 1000 - _MARGIN_SECONDS))


def _why(reply: str | Failure, attempts: int) -> str:
    if isinstance(reply, Failure):
        return f"the judge could not be asked: {reply.message}"
    shown = reply.strip().replace("\n", " ")[:300]
    return f"no parsable rating after {attempts} attempts; the judge's last reply: {shown!r}"


def _judge_failed(item: dict, reason: str) -> dict:
    print(f"sample {item['id']}: judge error: {reason}", file=sys.stderr)
    return {"id": item["id"], "aggregate_reward_score": 0.0,
            "metrics_list": [{"name": "judge_error", "value": 1.0, "type": "Metric"}]}
