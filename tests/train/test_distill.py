"""The distillation recipe's reading of prompts (pure: no model). The run itself is proven end to end
through boto3 in tests/api/test_distillation.py."""

from __future__ import annotations

import json

import pytest

from tailor.errors import InvalidInput
from tailor.train.distill import Prompt, as_messages_file, read_prompts


def _write(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_prompts_are_read_from_either_format_and_a_given_answer_is_left_for_the_teacher(tmp_path):
    path = _write(tmp_path / "p.jsonl", [
        {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": "Be brief."}],
         "messages": [{"role": "user", "content": [{"text": "What is "}, {"text": "Tailor?"}]},
                      {"role": "assistant", "content": [{"text": "An answer the teacher replaces."}]}]},
        {"messages": [{"role": "user", "content": "Hi?"}]},
    ])
    assert read_prompts(path) == [Prompt("Be brief.", (("user", "What is Tailor?"),)), Prompt(None, (("user", "Hi?"),))]
    assert read_prompts(path)[0].conversation() == [{"role": "system", "content": "Be brief."},
                                                    {"role": "user", "content": "What is Tailor?"}]
    assert read_prompts(path)[0].record("A platform.") == {
        "system": "Be brief.", "messages": [{"role": "user", "content": "What is Tailor?"},
                                            {"role": "assistant", "content": "A platform."}]}


def test_every_bad_prompt_is_reported_by_line_at_once(tmp_path):
    path = _write(tmp_path / "p.jsonl", [
        {"schemaVersion": "bedrock-conversation-2023", "messages": [{"role": "user", "content": "x"}]},
        "not json",
        {"messages": [{"role": "assistant", "content": "x"}]},
        {"messages": [{"role": "user", "content": [{"image": {}}]}]},
        {"messages": []},
    ])
    with pytest.raises(InvalidInput) as caught:
        read_prompts(path)
    message = caught.value.message
    assert "line 1: schemaVersion: must be bedrock-conversation-2024" in message
    assert "line 2: " in message
    assert "line 3: messages[0].role: the conversation must start with the user's turn" in message
    assert "line 4: messages[0].content: must be text" in message
    assert "line 5: messages: required" in message


def test_answered_conversations_become_messages_records(tmp_path):
    source = _write(tmp_path / "c.jsonl", [
        {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": "S"}],
         "messages": [{"role": "user", "content": [{"text": "Q"}]}, {"role": "assistant", "content": [{"text": "A"}]}]}])
    assert as_messages_file(source, tmp_path / "m.jsonl") == 1
    assert json.loads((tmp_path / "m.jsonl").read_text()) == {
        "system": "S", "messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
