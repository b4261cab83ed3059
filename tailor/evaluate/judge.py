"""LLM-as-judge metrics: a judge model rates each answer 1–10 on one criterion and says why.

The metrics keep the original service's names (``Builtin.Correctness``, ...). For each answer the
judge gets one conversation (``judge_messages``): a system prompt that fixes its role, then the
criterion, the rating scale, the question, the reference answer (for the criteria that use one,
when the dataset has one) and the response, and the demanded output form — reasoning first, then
a last line ``Rating: N``.

Parsing (``parse_rating``) takes the *last* ``Rating: N`` line (``N/10`` and markdown bold are
tolerated) with N a whole number from 1 to 10; the text before it is the reasoning. Anything
else does not parse — a number out of range, a missing line, a rating with no reasoning is fine
but no rating is not. Output that does not parse is sent back to the judge once more
(``retries``) with its reply and a reminder of the form; if that fails too, the score is
*missing* — ``value None`` with the judge's last output in the explanation — never a guess.
A rating N becomes the value ``(N - 1) / 9``: 1 → 0.0, 10 → 1.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tailor.evaluate.backends import Backend, Failure, Generation, OnReply
from tailor.evaluate.results import Score


@dataclass(frozen=True)
class Criterion:
    name: str
    question: str  # what the judge decides
    uses_reference: bool = False


JUDGE_METRICS: dict[str, Criterion] = {
    "Builtin.Correctness": Criterion(
        "correctness", "Is the response factually correct? When a reference answer is given, it is the truth: "
        "a response that contradicts it or misses its facts is incorrect.", uses_reference=True),
    "Builtin.Completeness": Criterion(
        "completeness", "Does the response answer everything the question asks, including every key point "
        "of the reference answer when one is given?", uses_reference=True),
    "Builtin.Helpfulness": Criterion(
        "helpfulness", "Would the response help the person who asked to reach their goal: useful, specific "
        "and to the point?"),
    "Builtin.Faithfulness": Criterion(
        "faithfulness", "Does the response stay faithful to the information available in the question (and "
        "the reference answer, when given), without inventing claims they do not support?", uses_reference=True),
    "Builtin.Relevance": Criterion(
        "relevance", "Does the response address the question that was asked, without drifting to other topics?"),
    "Builtin.Coherence": Criterion(
        "logical coherence", "Is the response logically coherent: no contradictions, no gaps or leaps in its "
        "reasoning?"),
    "Builtin.FollowingInstructions": Criterion(
        "instruction following", "Does the response follow every explicit instruction in the question "
        "(format, length, style, constraints)?"),
    "Builtin.ProfessionalStyleAndTone": Criterion(
        "professional style and tone", "Is the response written in a professional style and tone: correct "
        "spelling and grammar, clear, fit for a workplace?"),
}

SYSTEM = "You are an impartial judge who rates answers written by an AI assistant. You are strict and brief."
SCALE = "1 means not at all, 5 means partly, 10 means completely."
FORM = ("Reply with one or two sentences of reasoning, then a last line of exactly this form:\n"
        "Rating: N\nwhere N is a whole number from 1 to 10.")
REMINDER = ("Your reply did not end with a line 'Rating: N' (N a whole number from 1 to 10). "
            "Reply again: one or two sentences of reasoning, then that line.")
JUDGE_GENERATION = Generation(max_tokens=256, temperature=0.0)

_RATING = re.compile(r"^[\s*_#>-]*rating[\s*_]*[:=][\s*_]*(\d+)(?:\s*/\s*10)?[\s*_.]*$", re.IGNORECASE | re.MULTILINE)


def judge_messages(metric: str, question: str, response: str, reference: str | None) -> list[dict]:
    criterion = JUDGE_METRICS[metric]
    parts = [f"Rate the response below for {criterion.name}.", criterion.question, f"Scale: {SCALE}", "",
             "[Question]", question.strip(), ""]
    if criterion.uses_reference and reference:
        parts += ["[Reference answer]", reference.strip(), ""]
    parts += ["[Response]", response.strip() or "(empty)", "", FORM]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(parts)}]


def parse_rating(text: str) -> tuple[int, str] | None:
    """(rating, reasoning) from a judge's reply, or None when it holds no valid rating line."""
    matches = list(_RATING.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    rating = int(last.group(1))
    if not 1 <= rating <= 10:
        return None
    reasoning = text[: last.start()].strip() or "(the judge gave no reasoning)"
    return rating, reasoning


def normalized(rating: int) -> float:
    return (rating - 1) / 9


def rate(judge: Backend, metric: str, items: list[tuple[str, str, str | None]], *, retries: int = 1,
         on_reply: OnReply | None = None) -> list[Score]:
    """Scores for (question, response, reference) items, judged as one batch, then the unparsable
    ones again (up to ``retries`` more times)."""
    conversations = [judge_messages(metric, q, r, ref) for q, r, ref in items]
    replies = judge.chat(conversations, JUDGE_GENERATION, on_reply)
    scores: list[Score | None] = [None] * len(items)
    for attempt in range(retries + 1):
        again = []
        for index, reply in enumerate(replies):
            if scores[index] is not None:
                continue
            parsed = parse_rating(reply) if isinstance(reply, str) else None
            if parsed:
                rating, reasoning = parsed
                scores[index] = Score(metric, normalized(rating), rating, reasoning)
            elif attempt < retries and isinstance(reply, str):
                again.append(index)
        if not again:
            break
        # Ask again in the same conversation: the judge sees its own reply and what was wrong.
        retry_conversations = [conversations[i] + [{"role": "assistant", "content": replies[i]},
                                                   {"role": "user", "content": REMINDER}] for i in again]
        for index, reply in zip(again, judge.chat(retry_conversations, JUDGE_GENERATION, None)):
            replies[index] = reply
    return [score or _missing(metric, replies[i], retries + 1) for i, score in enumerate(scores)]


def _missing(metric: str, reply, attempts: int) -> Score:
    if isinstance(reply, Failure):
        return Score(metric, None, None, f"The judge could not be asked: {reply.message}")
    shown = reply.strip().replace("\n", " ")[:300]
    return Score(metric, None, None, f"No parsable rating after {attempts} attempts; the judge's last reply: "
                                     f"{shown!r}")
