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

*Custom metrics* (a Bedrock job's ``customMetricConfig``, ``spec.CustomMetric``) are not rated by
this loop: each becomes an OpenAI grader definition (``custom_grader``) graded by Tailor's one
grader layer (``tailor.graders.openai.grade``, injected by ``tailor.jobs.evaluation``), so a custom
metric, an Evals testing criterion and an RFT reward with the same definition give the same
number. The instructions' variables ``{{prompt}}``, ``{{prediction}}`` and ``{{ground_truth}}``
become ``{{item.prompt}}``, ``{{sample.output_text}}`` and ``{{item.referenceResponse}}``, and the
rating scale is written out under them, one ``definition = value`` line per item:

- numbers (``floatValue``): a ``score_model`` grader over [lowest, highest value]; the result is
  the judge's number snapped to the nearest value of the scale (``custom_result``);
- words (``stringValue``): a ``label_model`` grader whose labels are the values; the result is
  the chosen value's place in the scale, the first item 1.0 and the last 0.0, evenly spaced
  (a one-item scale: 1.0) — list the best value first; the chosen value leads the explanation;
- no scale: a ``score_model`` grader over [0, 1]; the result is the judge's number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tailor.evaluate.backends import Backend, Failure, Generation, OnReply, Reply
from tailor.evaluate.results import Score
from tailor.evaluate.spec import CustomMetric


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


# ---------------------------------------------------------------------------------------------
# Custom metrics as OpenAI grader definitions

CUSTOM_VARIABLES = {"prompt": "item.prompt", "prediction": "sample.output_text",
                    "ground_truth": "item.referenceResponse"}
_CUSTOM_VARIABLE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def custom_variables(instructions: str) -> list[str]:
    """The ``{{...}}`` variables ``instructions`` uses, as written (spaces inside the braces trimmed)."""
    return [name.strip() for name in _CUSTOM_VARIABLE.findall(instructions)]


def custom_instruction_problems(instructions: str) -> list[str]:
    """What is wrong with a custom metric's instructions: a variable other than ``{{prompt}}``,
    ``{{prediction}}``, ``{{ground_truth}}``, or no ``{{prediction}}`` (the response to rate)."""
    used = custom_variables(instructions)
    problems = []
    unknown = sorted({name for name in used if name not in CUSTOM_VARIABLES})
    if unknown:
        problems.append(f"unknown variable{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join('{{' + name + '}}' for name in unknown)}; a model evaluation's custom metric "
                        "may use {{prompt}}, {{prediction}} and {{ground_truth}}")
    if "prediction" not in used:
        problems.append("must contain {{prediction}}, where the response to rate goes")
    return problems


def custom_uses_reference(metric: CustomMetric) -> bool:
    """Whether the metric shows the judge the reference answer (every line then needs one)."""
    return "ground_truth" in custom_variables(metric.instructions)


def _scale_value(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g}"


def custom_grader(metric: CustomMetric, model: str) -> dict:
    """The OpenAI grader definition (a ``score_model`` or ``label_model``) that rates ``metric``
    with the judge ``model``."""
    text = _CUSTOM_VARIABLE.sub(lambda match: "{{" + CUSTOM_VARIABLES.get(match.group(1).strip(), match.group(1))
                                + "}}", metric.instructions)
    scale = metric.rating_scale
    if scale:
        text = (f"{text.rstrip()}\n\nRating scale:\n"
                + "\n".join(f"{item.definition} = {_scale_value(item.value)}" for item in scale))
    grader = {"name": metric.name, "model": model, "input": [{"role": "user", "content": text}]}
    if scale and isinstance(scale[0].value, str):
        labels = [str(item.value) for item in scale]
        return {"type": "label_model", **grader, "labels": labels, "passing_labels": labels[:1]}
    values = [float(item.value) for item in scale] or [0.0, 1.0]
    low, high = min(values), max(values)
    if low == high:  # a one-value scale: any number the judge gives snaps to it
        low, high = low - 1, high + 1
    return {"type": "score_model", **grader, "range": [low, high]}


def custom_result(metric: CustomMetric, number: float, label: str | None = None) -> float:
    """A custom metric's result from its grader: for a number scale, the judge's ``number`` snapped
    to the nearest value (the lower of two as near); for a word scale, ``label``'s place (first
    1.0 ... last 0.0); without a scale, ``number`` itself."""
    scale = metric.rating_scale
    if not scale:
        return number
    if isinstance(scale[0].value, str):
        labels = [str(item.value).strip().lower() for item in scale]
        place = labels.index((label or "").strip().lower())
        return 1.0 if len(labels) == 1 else (len(labels) - 1 - place) / (len(labels) - 1)
    return min((float(item.value) for item in scale), key=lambda value: (abs(value - number), value))
