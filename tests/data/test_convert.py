"""Conversions: Q&A and prompt/completion files to messages JSONL, errors, and the split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tailor.catalog import CustomizationType
from tailor.data.convert import (
    convert_qa_file,
    detect_qa_keys,
    prompt_completion_to_messages_file,
    qa_to_messages,
    read_items,
    split_records,
)
from tailor.data.formats import Message, MessagesRecord
from tailor.data.validate import load_records, validate
from tailor.errors import InvalidInput, NotFound
from tests.conftest import SEED_002_SYSTEM


def lines_of(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


def test_bedrock_faq_converts_to_85_valid_haiku_records(tmp_path, haiku, bedrock_faq):
    notes: list[str] = []
    destination = tmp_path / "faq.jsonl"
    assert convert_qa_file(bedrock_faq, destination, system=SEED_002_SYSTEM, notify=notes.append) == 85
    assert notes[0] == ("Using 'sentence1' as the question and 'sentence2' as the answer "
                        f"(detected in {bedrock_faq}).")
    report = validate(str(destination), CustomizationType.FINE_TUNING, haiku)
    assert report.ok, report.render()
    assert report.record_count == 85
    records = load_records(str(destination), CustomizationType.FINE_TUNING, haiku, purpose="training")
    source = json.loads(bedrock_faq.read_text(encoding="utf-8"))
    assert records[0] == MessagesRecord(system=SEED_002_SYSTEM, messages=[
        Message(role="user", content=source[0]["sentence1"]),
        Message(role="assistant", content=source[0]["sentence2"])])


def test_qa_to_messages_is_pure():
    items = [{"q": "What is 2 + 2?", "a": "4.", "id": 7}]
    assert qa_to_messages(items, question_key="q", answer_key="a", system=None) == [
        MessagesRecord(messages=[Message(role="user", content="What is 2 + 2?"),
                                 Message(role="assistant", content="4.")])]
    assert qa_to_messages(items, question_key="q", answer_key="a", system="Be brief.")[0].system == "Be brief."


def test_qa_to_messages_reports_every_bad_item():
    items = [{"q": "ok", "a": "ok"}, {"q": "x"}, {"q": 3, "a": " "}, "text", {"a": "y"}]
    with pytest.raises(InvalidInput) as raised:
        qa_to_messages(items, question_key="q", answer_key="a", system=None)
    assert raised.value.message == "\n  ".join([
        "Nothing written: 5 problems.",
        "item 1: key 'a' is missing (item keys: 'q')",
        "item 2: 'q' must be a string, got number",
        "item 2: 'a' is empty",
        "item 3: expected an object, got string",
        "item 4: key 'q' is missing (item keys: 'a')",
    ])


@pytest.mark.parametrize("pair", [("question", "answer"), ("sentence1", "sentence2"),
                                  ("prompt", "completion"), ("input", "output")])
def test_key_pairs_are_detected(pair):
    question, answer = pair
    assert detect_qa_keys([{"id": 1, answer: "a", question: "q"}]) == pair


def test_the_pair_most_items_hold_wins():
    items = [{"question": "q"}, {"sentence1": "s", "sentence2": "t"}, {"question": "q", "answer": "a"},
             {"question": "q", "answer": "a", "input": "i", "output": "o"}]
    assert detect_qa_keys(items) == ("question", "answer")
    assert detect_qa_keys(items[:2]) == ("sentence1", "sentence2")


def test_undetectable_keys_say_how_to_name_them():
    with pytest.raises(InvalidInput) as raised:
        detect_qa_keys([{"q": 1, "a": 2}, "text"])
    assert raised.value.message == (
        "Cannot tell which keys hold the question and the answer: no item has one of the pairs "
        "question/answer, sentence1/sentence2, prompt/completion, input/output (the first item has "
        "keys 'q', 'a'). Name them with --question-key and --answer-key.")


def test_jsonl_source_with_explicit_keys_and_unicode(tmp_path):
    source = tmp_path / "qa.jsonl"
    rows = [{"ask": "Qu'est-ce que c'est ?", "say": "Un café\u2028crème."}, {"ask": "2+2?", "say": "4"}]
    source.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n\n",
                      encoding="utf-8")
    destination = tmp_path / "out" / "messages.jsonl"
    assert convert_qa_file(source, destination, question_key="ask", answer_key="say") == 2
    assert "café" in destination.read_text(encoding="utf-8")  # ensure_ascii=False
    assert lines_of(destination)[0] == {"messages": [
        {"role": "user", "content": "Qu'est-ce que c'est ?"},
        {"role": "assistant", "content": "Un café\u2028crème."}]}


def test_conversion_errors_name_lines_and_write_nothing(tmp_path):
    source = tmp_path / "qa.jsonl"
    source.write_text('{"question": "a", "answer": "b"}\n\n{"question": "c"}\n{"question": "", "answer": 5}\n')
    destination = tmp_path / "out.jsonl"
    destination.write_text("previous content\n")
    with pytest.raises(InvalidInput) as raised:
        convert_qa_file(source, destination)
    assert raised.value.message == "\n  ".join([
        "Nothing written: 3 problems.",
        f"{source}: line 3 (item 1): key 'answer' is missing (item keys: 'question')",
        f"{source}: line 4 (item 2): 'question' is empty",
        f"{source}: line 4 (item 2): 'answer' must be a string, got number",
    ])
    assert destination.read_text() == "previous content\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.jsonl", "qa.jsonl"]  # no temp file


def test_invalid_json_lines_are_all_reported(tmp_path):
    source = tmp_path / "qa.jsonl"
    source.write_text('{"question": "a", "answer": "b"}\n{"question": \n[1,\n')
    with pytest.raises(InvalidInput) as raised:
        convert_qa_file(source, tmp_path / "out.jsonl")
    assert raised.value.message == "\n  ".join([
        "Nothing written: 2 problems.",
        f"{source}: line 2: invalid JSON: Expecting value (column 14)",
        f"{source}: line 3: invalid JSON: Expecting value (column 4)",
    ])
    assert not (tmp_path / "out.jsonl").exists()


def test_source_problems(tmp_path):
    with pytest.raises(NotFound, match="No file at"):
        read_items(tmp_path / "absent.json")
    (tmp_path / "number.json").write_text("42")
    with pytest.raises(InvalidInput, match="holds a JSON number; expected an array of objects or JSON Lines"):
        read_items(tmp_path / "number.json")
    (tmp_path / "latin.json").write_bytes('[{"q": "café"}]'.encode("latin-1"))
    with pytest.raises(InvalidInput, match="is not UTF-8 text: byte 0xe9 at offset 11"):
        read_items(tmp_path / "latin.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(InvalidInput, match="holds no items to convert"):
        convert_qa_file(tmp_path / "empty.json", tmp_path / "out.jsonl", question_key="q", answer_key="a")
    with pytest.raises(InvalidInput, match="Give both the question key and the answer key, or neither"):
        convert_qa_file(tmp_path / "empty.json", tmp_path / "out.jsonl", question_key="q")


def test_a_single_pretty_printed_object_is_one_item(tmp_path):
    (tmp_path / "one.json").write_text('{\n  "question": "q",\n  "answer": "a"\n}\n')
    assert read_items(tmp_path / "one.json") == ([{"question": "q", "answer": "a"}], ["item 0"])


def test_prompt_completion_file_to_messages(tmp_path):
    source = tmp_path / "pc.jsonl"
    source.write_text('{"prompt": "q1", "completion": "a1"}\n{"prompt": "q2", "completion": "a2"}\n')
    destination = tmp_path / "messages.jsonl"
    assert prompt_completion_to_messages_file(source, destination, system="Be brief.") == 2
    assert lines_of(destination)[1] == {"system": "Be brief.", "messages": [
        {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}
    source.write_text('{"prompt": "q1"}\n')
    with pytest.raises(InvalidInput, match=r"line 1 \(item 0\): key 'completion' is missing"):
        prompt_completion_to_messages_file(source, destination)


def test_split_is_seeded_disjoint_and_keeps_order():
    records = list(range(10))
    kept, held_out = split_records(records, 0.2, seed=0)
    assert len(held_out) == 2 and len(kept) == 8
    assert sorted(kept + held_out) == records
    assert kept == sorted(kept) and held_out == sorted(held_out)
    assert split_records(records, 0.2, seed=0) == (kept, held_out)
    assert split_records(records, 0.2, seed=1) != (kept, held_out)
    assert len(split_records(records, 0.01, seed=0)[1]) == 1  # at least one
    assert len(split_records(records, 0.99, seed=0)[0]) == 1  # never all
    with pytest.raises(InvalidInput, match="between 0 and 1, got 1.0"):
        split_records(records, 1.0, seed=0)
    with pytest.raises(InvalidInput, match="from 1 record"):
        split_records([1], 0.5, seed=0)


def test_convert_with_a_validation_split(tmp_path):
    source = tmp_path / "qa.json"
    source.write_text(json.dumps([{"question": f"q{i}", "answer": f"a{i}"} for i in range(10)]))
    notes: list[str] = []
    count = convert_qa_file(source, tmp_path / "train.jsonl", validation_fraction=0.3,
                            validation_destination=tmp_path / "val.jsonl", seed=0, notify=notes.append)
    train, held_out = lines_of(tmp_path / "train.jsonl"), lines_of(tmp_path / "val.jsonl")
    assert count == 10 and (len(train), len(held_out)) == (7, 3)
    questions = {record["messages"][0]["content"] for record in train + held_out}
    assert questions == {f"q{i}" for i in range(10)}
    assert notes[-1] == (f"Wrote 7 records to {tmp_path / 'train.jsonl'} and 3 held-out records to "
                         f"{tmp_path / 'val.jsonl'} (seed 0).")
    with pytest.raises(InvalidInput, match="needs both a fraction and a file"):
        convert_qa_file(source, tmp_path / "x.jsonl", validation_fraction=0.3)
