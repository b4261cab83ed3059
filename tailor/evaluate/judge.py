"""LLM-as-judge: a judge model rates an answer 1–10 on one criterion and says why.

``ask_judge`` is the one judge loop, used by evaluation's judge metrics (``rate``, below) and by
the judge graders of reinforcement fine-tuning (``tailor.graders.judging``), so that a reward and
a metric rated by the same judge are asked, parsed and retried alike (DESIGN rule 8). Each prompt
becomes one conversation (``judge_conversation``): a system prompt that fixes the judge's role,
then the prompt and the demanded output form — reasoning first, then a last line ``Rating: N``.

Parsing (``parse_rating``) takes the *last* ``Rating: N`` line (``N/10`` and markdown bold are
tolerated) with N a whole number from 1 to 10; the text before it is the reasoning. Anything
else does not parse — a number out of range, a missing line, a rating with no reasoning is fine
but no rating is not. Output that does not parse is sent back to the judge once more
(``retries``) with its reply and a reminder of the form; if that fails too, the verdict is
*missing* — no rating, with the judge's last output in the reason — never a guess. A judge that
cannot be asked at all (a ``Failure``) is not asked again here: its backend has already retried
what was safe to retry. A rating N becomes the value ``(N - 1) / 9``: 1 → 0.0, 10 → 1.0.

The evaluation metrics keep the original service's names (``Builtin.Correctness``, ...); their
prompt (``judge_prompt``) holds the criterion, the rating scale, the question, the reference
answer (for the criteria that use one, when the dataset has one) and the response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tailor.evaluate.backends import Backend, Failure, Generation, OnReply, Reply
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


def judge_prompt(metric: str, question: str, response: str, reference: str | None) -> str:
    """What the judge is asked about one answer for an evaluation metric (the reply form is added by
    ``judge_conversation``)."""
    criterion = JUDGE_METRICS[metric]
    parts = [f"Rate the response below for {criterion.name}.", criterion.question, f"Scale: {SCALE}", "",
             "[Question]", question.strip(), ""]
    if criterion.uses_reference and reference:
        parts += ["[Reference answer]", reference.strip(), ""]
    parts += ["[Response]", response.strip() or "(empty)"]
    return "\n".join(parts)


def judge_conversation(prompt: str) -> list[dict]:
    """The conversation a judge gets for ``prompt``: its role, then the prompt and the reply form."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{prompt.strip()}\n\n{FORM}"}]


def judge_messages(metric: str, question: str, response: str, reference: str | None) -> list[dict]:
    """The conversation for one answer of an evaluation metric."""
    return judge_conversation(judge_prompt(metric, question, response, reference))


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


@dataclass(frozen=True)
class Verdict:
    """The judge's answer about one prompt: a rating 1–10 and its reasoning, or (``rating`` None)
    why there is none."""

    rating: int | None
    explanation: str  # the reasoning, or why the rating is missing

    @property
    def value(self) -> float | None:
        """The rating on 0–1 (None when missing)."""
        return None if self.rating is None else normalized(self.rating)


def ask_judge(judge: Backend, prompts: list[str], *, retries: int = 1,
              on_reply: OnReply | None = None) -> list[Verdict]:
    """One verdict per prompt: every prompt is asked as one batch, then the replies that do not
    parse are asked again (up to ``retries`` more times) in the same conversation, with the judge's
    own reply and a reminder of the form. ``on_reply`` is called once per first-round reply."""
    conversations = [judge_conversation(prompt) for prompt in prompts]
    replies: list[Reply] = list(judge.chat(conversations, JUDGE_GENERATION, on_reply))
    verdicts: list[Verdict | None] = [None] * len(prompts)
    for attempt in range(retries + 1):
        again = []
        for index, reply in enumerate(replies):
            if verdicts[index] is not None:
                continue
            parsed = parse_rating(reply) if isinstance(reply, str) else None
            if parsed:
                verdicts[index] = Verdict(*parsed)
            elif attempt < retries and isinstance(reply, str):
                again.append(index)
        if not again:
            break
        retry_conversations = [conversations[i] + [{"role": "assistant", "content": replies[i]},
                                                   {"role": "user", "content": REMINDER}] for i in again]
        for index, reply in zip(again, judge.chat(retry_conversations, JUDGE_GENERATION, None), strict=True):
            replies[index] = reply
    return [verdict or _missing(replies[i], retries + 1) for i, verdict in enumerate(verdicts)]


def rate(judge: Backend, metric: str, items: list[tuple[str, str, str | None]], *, retries: int = 1,
         on_reply: OnReply | None = None) -> list[Score]:
    """Scores for (question, response, reference) items on the judge metric ``metric``."""
    prompts = [judge_prompt(metric, question, response, reference) for question, response, reference in items]
    return [Score(metric, verdict.value, verdict.rating, verdict.explanation)
            for verdict in ask_judge(judge, prompts, retries=retries, on_reply=on_reply)]


def _missing(reply: Reply, attempts: int) -> Verdict:
    if isinstance(reply, Failure):
        return Verdict(None, f"The judge could not be asked: {reply.message}")
    shown = reply.strip().replace("\n", " ")[:300]
    return Verdict(None, f"No parsable rating after {attempts} attempts; the judge's last reply: {shown!r}")
