"""Invocation logs read back as each customization type's training file (services/customization.py
``_log_training_file``): what the recipe of that type then reads passes its own data validation —
the same check a job runs first — with the logged answer where the type learns from it."""

from __future__ import annotations

import json

import pytest

from tailor.catalog import CustomizationType, resolve_model
from tailor.data.validate import load_records, validate_dataset
from tailor.services.customization import _log_training_file
from tailor.settings import Settings

SYSTEM = "You are Tailor's help desk."
CALLS = [("What is Tailor?", "A self-hosted platform for customizing open LLMs."),
         ("Which API does it answer?", "Bedrock's and OpenAI's.")]


def _converted(path, *, answers: bool):
    """What ``wire.invocation_logs.training_file`` writes: bedrock-conversation-2024 records."""
    lines = []
    for question, answer in CALLS * 4:  # RFT needs a few records; repeats are fine for the check
        messages = [{"role": "user", "content": [{"text": question}]}]
        if answers:
            messages.append({"role": "assistant", "content": [{"text": answer}]})
        lines.append({"schemaVersion": "bedrock-conversation-2024", "system": [{"text": SYSTEM}],
                      "messages": messages})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.parametrize(("kind", "answers"), [
    (CustomizationType.FINE_TUNING, True),
    (CustomizationType.REINFORCEMENT_FINE_TUNING, True),
    (CustomizationType.REINFORCEMENT_FINE_TUNING, False),
    (CustomizationType.DISTILLATION, False),
])
def test_each_types_training_file_from_logs_passes_its_validation(home, tmp_path, kind, answers):
    settings = Settings(home=home)
    model = resolve_model("tailor.tiny", settings)
    training = _log_training_file(_converted(tmp_path / "invocation-logs.jsonl", answers=answers), kind, answers)
    if kind is CustomizationType.DISTILLATION:  # the distillation recipe reads the prompts as they are
        assert training.name == "invocation-logs.jsonl"
        return
    [report] = validate_dataset(str(training), [], kind, model, settings=settings, reference_required=answers)
    assert report.ok, report.problems
    assert report.record_count == len(CALLS) * 4
    first = load_records(str(training), kind, model, purpose="training", settings=settings,
                         reference_required=answers)[0]
    shown = json.dumps(first, default=lambda value: getattr(value, "__dict__", str(value)))
    assert CALLS[0][0] in shown and SYSTEM in shown
    assert (CALLS[0][1] in shown) == answers  # the logged answer: learned (FT) or the reference (RFT)
