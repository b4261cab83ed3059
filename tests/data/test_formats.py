"""The record models: what they accept, what they refuse, and the conversation form."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tailor.catalog import DataFormat
from tailor.data.formats import (
    RECORD_MODELS,
    Message,
    MessagesRecord,
    PromptCompletionRecord,
    RftMessage,
    RftRecord,
    TextRecord,
    chat_messages,
    format_of,
    json_type,
    rft_fields,
    rft_prompt,
    rft_reference,
    to_messages,
)

CHAT = {"system": "Be brief.", "messages": [{"role": "user", "content": "Hi"},
                                            {"role": "assistant", "content": "Hello"}]}


def test_every_data_format_has_a_record_model():
    assert set(RECORD_MODELS) == set(DataFormat)


def test_messages_record_round_trips():
    record = MessagesRecord.model_validate(CHAT)
    assert record.system == "Be brief."
    assert record.messages[1] == Message(role="assistant", content="Hello")
    assert record.model_dump(exclude_none=True) == CHAT
    assert MessagesRecord.model_validate({"messages": CHAT["messages"]}).system is None


@pytest.mark.parametrize("value", [
    {**CHAT, "id": 1},                                                      # unknown key
    {"messages": [{"role": "user", "content": "Hi", "name": "x"}]},         # unknown key inside
    {"messages": [{"role": "system", "content": "Hi"}]},                    # role
    {"messages": [{"role": "user", "content": 5}]},                         # strict: no coercion
    {"system": 1, "messages": []},
])
def test_messages_record_refuses(value):
    with pytest.raises(ValidationError):
        MessagesRecord.model_validate(value)


def test_prompt_completion_and_text_records_are_strict():
    assert PromptCompletionRecord(prompt="q", completion="a").completion == "a"
    assert TextRecord(input="x").input == "x"
    with pytest.raises(ValidationError):
        PromptCompletionRecord.model_validate({"prompt": "q", "completion": "a", "extra": 1})
    with pytest.raises(ValidationError):
        TextRecord.model_validate({"input": 3})


def test_records_are_frozen_values():
    record = TextRecord(input="x")
    with pytest.raises(ValidationError):
        record.input = "y"
    assert record == TextRecord(input="x")


def test_to_messages():
    pair = PromptCompletionRecord(prompt="What is 2 + 2?", completion="4.")
    assert to_messages(pair) == MessagesRecord(messages=[
        Message(role="user", content="What is 2 + 2?"), Message(role="assistant", content="4.")])
    record = MessagesRecord.model_validate(CHAT)
    assert to_messages(record) is record
    with pytest.raises(TypeError, match="TextRecord has no conversation form"):
        to_messages(TextRecord(input="x"))  # type: ignore[arg-type]


def test_chat_messages_put_the_system_prompt_first():
    assert chat_messages(MessagesRecord.model_validate(CHAT)) == [
        {"role": "system", "content": "Be brief."}, *CHAT["messages"]]
    assert chat_messages(PromptCompletionRecord(prompt="q", completion="a")) == [
        {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]


def test_format_of_keys():
    assert format_of(["system", "messages"]) is DataFormat.MESSAGES
    assert format_of({"prompt", "completion", "id"}) is DataFormat.PROMPT_COMPLETION
    assert format_of({"completion"}) is DataFormat.PROMPT_COMPLETION
    assert format_of({"input"}) is DataFormat.TEXT
    assert format_of({"question"}) is None
    assert format_of({"messages", "prompt"}) is None  # ambiguous


def test_a_reference_answer_makes_a_chat_record_an_rft_prompt():
    assert format_of({"messages", "reference_answer", "task_id"}) is DataFormat.RFT_CHAT
    assert format_of({"reference_answer"}) is DataFormat.RFT_CHAT
    assert format_of({"messages", "metadata"}) is DataFormat.MESSAGES  # a reference under metadata is not seen
    assert format_of({"messages", "reference_answer", "prompt"}) is None


def test_json_type_names():
    assert [json_type(value) for value in (None, True, 1, 1.5, "s", [], {})] == [
        "null", "boolean", "number", "number", "string", "array", "object"]


RFT = {"messages": [{"role": "system", "content": "Answer with a number."},
                    {"role": "user", "content": "What is 2 + 2?"}],
       "reference_answer": {"value": 4}, "task_id": "t-1", "domain": "math"}


def test_rft_record_keeps_the_graders_keys():
    record = RftRecord.model_validate(RFT)
    assert record.messages[0] == RftMessage(role="system", content="Answer with a number.")
    assert record.reference_answer == {"value": 4} and record.metadata is None
    assert record.model_extra == {"task_id": "t-1", "domain": "math"}
    assert record.model_dump(exclude_unset=True) == RFT
    assert rft_fields(record) == {"reference_answer": {"value": 4}, "task_id": "t-1", "domain": "math"}
    assert rft_reference(record) == {"value": 4}


def test_rft_reference_under_metadata():
    record = RftRecord.model_validate({"messages": RFT["messages"], "metadata": {"reference_answer": "4", "k": 1}})
    assert record.reference_answer is None and rft_reference(record) == "4"
    assert rft_fields(record) == {"metadata": {"reference_answer": "4", "k": 1}}
    assert rft_reference(RftRecord.model_validate({"messages": []})) is None  # validate.py refuses this one


def test_rft_prompt_is_the_conversation_for_a_chat_template():
    turns = [*RFT["messages"], {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3 + 3?"}]
    record = RftRecord.model_validate({**RFT, "messages": turns})
    assert rft_prompt(record) == turns
    with pytest.raises(TypeError, match="RftRecord has no conversation form"):
        to_messages(record)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [
    {"reference_answer": 4},                                                     # no messages
    {"messages": [{"role": "tool", "content": "x"}], "reference_answer": 4},     # role
    {"messages": [{"role": "user", "content": "x", "name": "n"}]},               # unknown key inside a message
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},  # text only
    {"messages": [], "metadata": "math"},                                        # metadata is an object
])
def test_rft_record_refuses(value):
    with pytest.raises(ValidationError):
        RftRecord.model_validate(value)


def test_rft_records_are_frozen():
    record = RftRecord.model_validate(RFT)
    with pytest.raises(ValidationError):
        record.reference_answer = 5
