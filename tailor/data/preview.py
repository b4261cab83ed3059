"""The training view: what exactly a model is trained on, record by record.

A record is rendered the way its recipe renders it for training (``tailor.data.render``: the
model's own chat template, the same functions ``train/sft.py``, ``train/cpt.py``, ``train/dpo.py``
and ``train/rft.py`` call), then cut into runs of tokens that carry loss and tokens that do not,
each run decoded back to text. People see the rendered template with the learned text marked,
and the counts: that is the answer to "what is my model trained on?".

- FINE_TUNING: a conversation or a prompt/completion pair; the assistant turns are learned
  (a ``"weight": 0`` turn is not).
- CONTINUED_PRE_TRAINING: the text and its end token, every token learned (the first window of
  the model's context; a longer text trains in several windows, noted by ``windows``).
- DPO: the prompt and the preferred answer; the answer is what the preference raises.
- REINFORCEMENT_FINE_TUNING: the prompt only, as the model sees it before writing an answer;
  nothing in the file is learned (the model learns from its own graded answers).

Pure: it takes a tokenizer, and imports nothing heavy, so the engine process (which has the
tokenizer) runs it and the API process never loads transformers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tailor.catalog import CustomizationType
from tailor.data import formats, render
from tailor.data.render import IGNORE_INDEX, Example
from tailor.errors import InvalidInput

SYSTEM_ROLES = ("system", "developer")
CPT_WINDOW = 1024  # train/cpt.py's MAX_WINDOW: the training view shows the first window


@dataclass(frozen=True)
class RecordView:
    """One record as training sees it: ``segments`` of text, each learned (carries loss) or not."""

    segments: list[tuple[str, bool]] = field(default_factory=list)
    tokens: int = 0
    targets: int = 0
    windows: int = 1  # continued pre-training: how many context windows the text trains in

    def to_json(self) -> dict[str, Any]:
        return {"segments": [[text, learned] for text, learned in self.segments], "tokens": self.tokens,
                "targets": self.targets, "windows": self.windows}


def segments(tokenizer, example: Example) -> list[tuple[str, bool]]:
    """The example's tokens as runs of equal "carries loss", each decoded to text (special tokens
    kept: the template's markers are part of what the model reads)."""
    runs: list[tuple[str, bool]] = []
    start = 0
    ids, labels = example.input_ids, example.labels
    for end in range(1, len(ids) + 1):
        if end == len(ids) or (labels[end] != IGNORE_INDEX) != (labels[start] != IGNORE_INDEX):
            text = tokenizer.decode(ids[start:end], skip_special_tokens=False)
            runs.append((text, labels[start] != IGNORE_INDEX))
            start = end
    return runs


def view_of(tokenizer, example: Example, windows: int = 1) -> RecordView:
    return RecordView(segments(tokenizer, example), len(example.input_ids), example.target_count, windows)


def training_view(tokenizer, record: dict[str, Any], kind: CustomizationType | str) -> RecordView:
    """The record (a parsed JSON line) as its customization type trains on it; ``InvalidInput``
    when the record is not of that type's format (validation says why, by field)."""
    kind = CustomizationType(kind)
    if not isinstance(record, dict):
        raise InvalidInput("The line is not a JSON object.")
    try:
        if kind is CustomizationType.CONTINUED_PRE_TRAINING:
            text = formats.TextRecord.model_validate(record).input
            windows = render.text_examples(tokenizer, text, _window(tokenizer))
            return view_of(tokenizer, windows[0], len(windows))
        if kind is CustomizationType.DPO:
            return view_of(tokenizer, preference_example_of(tokenizer, formats.PreferenceRecord.model_validate(record)))
        if kind is CustomizationType.REINFORCEMENT_FINE_TUNING:
            turns = formats.rft_prompt(formats.RftRecord.model_validate(record))
            ids = render.prompt_ids(tokenizer, turns)
            return view_of(tokenizer, Example(list(ids), [IGNORE_INDEX] * len(ids)))
        if kind is CustomizationType.FINE_TUNING:
            chat = _chat_record(record)
            return view_of(tokenizer, render.chat_example(tokenizer, formats.chat_messages(chat),
                                                          tools=formats.chat_tools(chat)))
    except ValidationError as error:
        raise InvalidInput(f"Not a {kind.value} record: {_first_error(error)} (Validate names every problem).") \
            from None
    raise InvalidInput(f"No training view for {kind.value}.")


def preference_example_of(tokenizer, record: formats.PreferenceRecord) -> Example:
    """The prompt with the preferred answer, as DPO trains on it (``render.preference_example``)."""
    from tailor.data.preference import preference_turns

    prompt, chosen, _ = preference_turns(record)
    return render.preference_example(tokenizer, prompt, chosen, record.input.tools)


def _chat_record(record: dict[str, Any]):
    if "prompt" in record or "completion" in record:
        return formats.PromptCompletionRecord.model_validate(record)
    messages = record.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) \
            and messages[0].get("role") in SYSTEM_ROLES and "system" not in record:
        # OpenAI's chat files give the system prompt as the first message; validation lifts it too.
        record = {**record, "system": messages[0].get("content"), "messages": messages[1:]}
    return formats.ChatRecord.model_validate(record)


def _window(tokenizer) -> int:
    limit = tokenizer.model_max_length
    return min(CPT_WINDOW, limit) if limit and limit < 1e9 else CPT_WINDOW


def _first_error(error: ValidationError) -> str:
    detail = error.errors()[0]
    where = ".".join(str(part) for part in detail.get("loc", ()))
    return f"{where}: {detail.get('msg')}" if where else str(detail.get("msg"))
