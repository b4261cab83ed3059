"""The shared half of the judge graders (RLAIF): a judge model rates each sample 1–10.

The judge templates (``tailor graders templates``) each write the *prompt* (what to judge, the
criteria, the scoring guidelines) and hand it to ``judge_batch``, which asks the judge through
evaluation's own judge loop (``tailor.evaluate.judge.ask_judge``: the system prompt, the demanded
reply form, one re-ask when the reply does not parse, the parsing, and the scale 1 → 0.0,
10 → 1.0), so a reward and an evaluation metric rated by one judge agree (DESIGN rule 8).
``sections`` and ``transcript`` are the pieces of prompt the templates share.

The judge is any OpenAI-compatible chat-completions API, by default Tailor's own serving API.
Three variables configure it, registered with the grader (``tailor graders create NAME --file
THIS.py --env NAME=VALUE``): a grader runs in a sandbox that sees none of the server's environment
(``tailor.graders.sandbox``), and ``TAILOR_JUDGE_URL`` is also what opens the sandbox's one way out
to that host and port, so register it even for the default:

``TAILOR_JUDGE_URL``      base URL, default ``http://127.0.0.1:8080/v1`` (``/chat/completions`` is added)
``TAILOR_JUDGE_MODEL``    the judge model: a model id, custom model or deployment name (required)
``TAILOR_JUDGE_API_KEY``  bearer key (for Tailor: the ``api_key`` that ``tailor keys create`` prints)

A judge that cannot be reached, is not configured, or gives no parsable rating scores the sample
0.0 with a ``judge_error`` metric of 1 and the reason on stderr (the grader's log) — never a
made-up score. Give such a grader a timeout long enough for a batch of judge calls (e.g.
``--timeout 300``); each request may use what is left of it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

from tailor.evaluate.backends import OpenAIModel
from tailor.evaluate.judge import ask_judge
from tailor.graders.contract import text_of

URL_VARIABLE = "TAILOR_JUDGE_URL"
MODEL_VARIABLE = "TAILOR_JUDGE_MODEL"
KEY_VARIABLE = "TAILOR_JUDGE_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8080/v1"
LONGEST_REQUEST_SECONDS = 120.0
_MARGIN_SECONDS = 1.0  # left to the grader to return its results before its own timeout


def judge_batch(event: list[dict], build_prompt: Callable[[dict], str], *, metric: str,
                context: Any = None, retries: int = 1) -> list[dict]:
    """The results list for ``event``: each sample's reward is the judge's rating of the prompt
    ``build_prompt(sample)`` returns (the reply form is appended by the judge loop), named ``metric``."""
    model = os.environ.get(MODEL_VARIABLE)
    if not model:
        return [_judge_failed(item, f"{MODEL_VARIABLE} is not set: name the judge model") for item in event]
    judge = OpenAIModel(f"judge {model}", model, os.environ.get(URL_VARIABLE) or DEFAULT_URL,
                        api_key=os.environ.get(KEY_VARIABLE), timeout_s=_request_timeout(context))
    verdicts = ask_judge(judge, [build_prompt(item) for item in event], retries=retries)
    results = []
    for item, verdict in zip(event, verdicts, strict=True):
        if verdict.rating is None:
            results.append(_judge_failed(item, verdict.explanation))
            continue
        results.append({
            "id": item["id"],
            "aggregate_reward_score": verdict.value,
            "metrics_list": [{"name": metric, "value": verdict.value, "type": "Reward"},
                             {"name": "judge_rating", "value": verdict.rating, "type": "Metric"},
                             {"name": "judge_error", "value": 0.0, "type": "Metric"}],
            "judge_reasoning": verdict.explanation,  # an extra key: the original contract tolerates them
        })
    return results


def sections(instructions: str, *titled: tuple[str, Any]) -> str:
    """A judge prompt: the instructions, then each ``(title, text)`` as a line ``[title]`` and the
    text, a blank line apart. A section whose text is None (an optional field the record lacks) is
    left out."""
    parts = [instructions]
    for title, text in titled:
        if text is not None:
            parts += ["", f"[{title}]", str(text)]
    return "\n".join(parts)


def transcript(messages: Iterable[dict]) -> str:
    """Chat messages as lines ``ROLE: text``, for a prompt that shows a conversation."""
    return "\n".join(f"{message['role'].upper()}: {text_of(message.get('content'))}" for message in messages)


def _request_timeout(context: Any) -> float:
    """Each judge request may use the time the grader has left, less a margin to answer."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return LONGEST_REQUEST_SECONDS
    return max(1.0, min(LONGEST_REQUEST_SECONDS, remaining() / 1000 - _MARGIN_SECONDS))


def _judge_failed(item: dict, reason: str) -> dict:
    print(f"sample {item['id']}: judge error: {reason}", file=sys.stderr)
    return {"id": item["id"], "aggregate_reward_score": 0.0,
            "metrics_list": [{"name": "judge_error", "value": 1.0, "type": "Metric"}]}
