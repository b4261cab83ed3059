"""The ``score_model`` and ``label_model`` graders: a judge model asked.

Which models may judge (``_model_problem``: one Tailor serves, never an address) and opening them
(``_default_judges``, ``close_judges``); the conversation a judge is sent, ending with the form of
reply it must give; ``ask``, which asks again once when a reply does not parse; and
``parse_score`` / ``parse_label``, which read a reply.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable
from typing import Any

from tailor.errors import InvalidInput, ModelUnavailable, NotFound
from tailor.graders.openai.definitions import (
    LabelModelGrader,
    SamplingParams,
    ScoreModelGrader,
)
from tailor.graders.openai.outcomes import Judges, _Context, _failure, _Outcome
from tailor.graders.openai.templates import _TemplateError, render
from tailor.settings import Settings

JUDGE_MAX_TOKENS = 256  # a judge's reply unless sampling_params.max_completions_tokens says otherwise
JUDGE_RETRIES = 1


SCORE_FORM = ("Reply with your reasoning if you need any, then a last line of exactly this form:\n"
              "Score: N\nwhere N is a number from {low:g} to {high:g}.")
LABEL_FORM = ("Reply with your reasoning if you need any, then a last line of exactly this form:\n"
              "Label: L\nwhere L is one of: {labels}.")
REMINDER = "Your reply did not end with the line the form asks for. Reply again, ending with that line:\n{form}"
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SCORE_LINE = re.compile(rf"^[\s*_#>-]*(?:score|result|rating)[\s*_]*[:=][\s*_]*({_NUMBER})[\s*_.]*$",
                         re.IGNORECASE | re.MULTILINE)
_LABEL_LINE = re.compile(r"^[\s*_#>-]*(?:label|result)[\s*_]*[:=][\s*_]*(.+?)[\s*_.]*$", re.IGNORECASE | re.MULTILINE)


def _model_problem(model: str, settings: Settings) -> str | None:
    """Why ``model`` cannot judge here (None when it can): it must be a remote model the operator
    configured or a catalog id / alias; never an address."""
    if model in settings.remote_models:
        return None
    from tailor.catalog import resolve_registered_model

    try:
        resolve_registered_model(model, settings)
    except (NotFound, ModelUnavailable, InvalidInput) as error:
        configured = ", ".join(sorted(settings.remote_models)) or "none configured"
        return (f"{error.message} A judge model is a model this server runs (a catalog id or "
                f"TAILOR_MODEL_ALIASES key) or an operator-configured remote model ({configured}).")
    return None


_OPENERS: dict[str, Any] = {}  # home -> the Opener whose engine runs Tailor's own judges here
_OPENERS_LOCK = threading.Lock()


def _default_judges(settings: Settings) -> Judges:
    """Judges opened in this process: a remote model with the operator's address and credentials,
    or one of Tailor's own models in an engine of this process (one per home, kept for the
    process's life: a training job grades every step)."""
    from tailor.evaluate.backends import Opener, remote_backend
    from tailor.serve.protocol import Target

    def open_judge(model: str) -> Any:
        if model in settings.remote_models:
            return remote_backend(model, settings.remote_models[model], settings.inference_timeout_seconds)
        def resolve(name: str) -> Target:
            from tailor.catalog import resolve_registered_model

            resolve_registered_model(name, settings)  # a catalog id or alias: never a path or an address
            return Target(base=name)

        with _OPENERS_LOCK:
            opener = _OPENERS.setdefault(str(settings.home), Opener(settings, resolve, max_models=1))
        return opener.open(model)
    return open_judge


def close_judges() -> None:
    """Stop the engines the default judges started (tests; a process that is done grading)."""
    with _OPENERS_LOCK:
        openers = list(_OPENERS.values())
        _OPENERS.clear()
    for opener in openers:
        opener.close()


def _conversation(grader: ScoreModelGrader | LabelModelGrader, case: dict, form: str) -> list[dict]:
    messages = [{"role": "system" if message.role == "developer" else message.role,
                 "content": render(message.content, case)} for message in grader.input]
    if messages[-1]["role"] == "user":
        messages[-1] = {"role": "user", "content": f"{messages[-1]['content'].rstrip()}\n\n{form}"}
    else:
        messages.append({"role": "user", "content": form})
    return messages


def _grade_model(grader: ScoreModelGrader | LabelModelGrader, cases: list[dict], context: _Context) -> list[_Outcome]:
    from tailor.evaluate.backends import Failure, Generation

    if isinstance(grader, ScoreModelGrader):
        low, high = grader.range
        form = SCORE_FORM.format(low=low, high=high)
        parse: Callable[[str], float | None] = lambda reply: parse_score(reply, (low, high))  # noqa: E731
    else:
        form = LABEL_FORM.format(labels=", ".join(grader.labels))
        parse = lambda reply: _label_reward(grader, reply)  # noqa: E731
    outcomes: list[_Outcome | None] = [None] * len(cases)
    conversations, asked = [], []
    for index, case in enumerate(cases):
        try:
            conversations.append(_conversation(grader, case, form))
            asked.append(index)
        except _TemplateError as error:
            outcomes[index] = _failure(error.flag, str(error))
    if asked:
        problem = _model_problem(grader.model, context.settings)
        try:
            judge = None if problem else (context.judges or _default_judges(context.settings))(grader.model)
        except Exception as error:  # the model cannot be opened here
            problem = f"{type(error).__name__}: {error}"
        if judge is None:
            for index in asked:
                outcomes[index] = _failure("model_grader_server_error", f"{grader.model}: {problem}")
        else:
            params = getattr(grader, "sampling_params", None) or SamplingParams()
            generation = Generation(max_tokens=params.max_completions_tokens or JUDGE_MAX_TOKENS,
                                    temperature=params.temperature if params.temperature is not None else 0.0,
                                    top_p=params.top_p if params.top_p is not None else 1.0)
            verdicts = ask(judge, conversations, parse, REMINDER.format(form=form), generation)
            for index, (value, reply) in zip(asked, verdicts, strict=True):
                if value is not None:
                    outcomes[index] = _Outcome(value, sampled=True, reply=reply.strip())
                elif isinstance(reply, Failure):
                    outcomes[index] = _failure("model_grader_server_error", f"{grader.model}: {reply.message}")
                else:
                    shown = reply.strip().replace("\n", " ")[:300]
                    outcomes[index] = _failure("model_grader_parse_error", f"{grader.model} gave no parsable "
                                               f"{'score' if isinstance(grader, ScoreModelGrader) else 'label'} "
                                               f"after {JUDGE_RETRIES + 1} attempts; its last reply: {shown!r}")
    return [outcome or _failure("other_error", "not graded") for outcome in outcomes]


def ask(judge: Any, conversations: list[list[dict]], parse: Callable[[str], Any], reminder: str,
        generation: Any, retries: int = JUDGE_RETRIES) -> list[tuple[Any, Any]]:
    """``(parsed value or None, last reply)`` per conversation: every conversation asked as one batch,
    the replies that do not parse asked again (up to ``retries`` times) in the same conversation with
    the judge's reply and ``reminder``. The loop of ``tailor.evaluate.judge.ask_judge``, for a form
    of reply other than its ``Rating: N``."""
    replies = list(judge.chat(conversations, generation, None))
    values: list[Any] = [None] * len(conversations)
    for attempt in range(retries + 1):
        again = []
        for index, reply in enumerate(replies):
            if values[index] is not None:
                continue
            values[index] = parse(reply) if isinstance(reply, str) else None
            if values[index] is None and attempt < retries and isinstance(reply, str):
                again.append(index)
        if not again:
            break
        retry = [conversations[i] + [{"role": "assistant", "content": replies[i]},
                                     {"role": "user", "content": reminder}] for i in again]
        for index, reply in zip(again, judge.chat(retry, generation, None), strict=True):
            replies[index] = reply
    return list(zip(values, replies, strict=True))


def _unfenced(reply: str) -> str:
    text = reply.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    return fenced.group(1) if fenced else text


def parse_score(reply: str, bounds: tuple[float, float]) -> float | None:
    """The score in a judge's reply — a JSON object's ``result`` (OpenAI's structured form), the last
    ``Score: N`` line, or a reply that is only a number — when it lies within ``bounds``; else None."""
    text = _unfenced(reply)
    value: Any = None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        value = parsed.get("result", parsed.get("score"))
    elif isinstance(parsed, int | float):
        value = parsed
    else:
        lines = _SCORE_LINE.findall(text)
        value = float(lines[-1]) if lines else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if bounds[0] <= value <= bounds[1] else None


def parse_label(reply: str, labels: list[str]) -> str | None:
    """The label in a judge's reply — a JSON object's ``result``, the last ``Label: L`` line, or a
    reply that is only the label — matched ignoring case, quotes and surrounding punctuation."""
    text = _unfenced(reply)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        candidate = parsed.get("result", parsed.get("label"))
    elif isinstance(parsed, str):
        candidate = parsed
    else:
        lines = _LABEL_LINE.findall(text)
        candidate = lines[-1] if lines else text
    if not isinstance(candidate, str):
        return None
    wanted = candidate.strip().strip("\"'`*.").strip().lower()
    return next((label for label in labels if label.strip().lower() == wanted), None)


def _label_reward(grader: LabelModelGrader, reply: str) -> float | None:
    label = parse_label(reply, grader.labels)
    return None if label is None else float(label in grader.passing_labels)
