"""Every validation rule: a failing input and its exact problem (line, field, message)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tailor import tiny
from tailor.catalog import (
    FAMILIES,
    FOUNDATION_MODELS,
    CustomizationType,
    DataFormat,
    DataLimits,
    Family,
    ResolvedModel,
)
from tailor.data.formats import (
    MessagesRecord,
    PromptCompletionRecord,
    RftRecord,
    TextRecord,
    chat_messages,
    rft_prompt,
)
from tailor.data.render import chat_example
from tailor.data.validate import (
    Problem,
    Report,
    count_tokens,
    load_records,
    validate,
    validate_dataset,
)
from tailor.errors import InvalidInput, NotFound

FT = CustomizationType.FINE_TUNING
CPT = CustomizationType.CONTINUED_PRE_TRAINING
RFT = CustomizationType.REINFORCEMENT_FINE_TUNING


def chat(question: str = "What is 2 + 2?", answer: str = "4.", **extra) -> dict:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}], **extra}


def turns(*roles: str) -> dict:
    return {"messages": [{"role": role, "content": f"turn {index}"} for index, role in enumerate(roles)]}


def found(report: Report) -> list[tuple[int | None, str | None, str]]:
    return [(problem.line, problem.field, problem.message) for problem in report.problems]


def check(write, model, lines, customization_type=FT, **options) -> list[tuple]:
    return found(validate(write(lines), customization_type, model, **options))


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)


# ---- a valid file --------------------------------------------------------------------------


def test_a_valid_file_passes(write, make_model):
    lines = [chat(), chat(system="Be brief."),
             {"system": "Be brief.", "messages": turns("user", "assistant", "user", "assistant")["messages"]}]
    report = validate(write(lines), FT, make_model())
    assert report.ok and report.problems == []
    assert report.record_count == 3
    assert report.format is DataFormat.MESSAGES
    assert report.render().endswith("OK, 3 records (training data, messages format)")


def test_a_valid_haiku_file_of_32_records_passes(write, haiku):
    report = validate(write([chat(f"question {i}") for i in range(32)]), FT, haiku)
    assert report.ok, report.render()


def test_system_may_be_null_and_colonless_markers_are_allowed(write, make_model):
    lines = [{"system": None, **chat()}, chat("Quote:\nHuman said hi\nAssistant said hello")]
    assert check(write, make_model(), lines) == []


# ---- the file ------------------------------------------------------------------------------


def test_missing_file_is_not_found(tmp_path, make_model):
    with pytest.raises(NotFound, match="No file at"):
        validate(str(tmp_path / "absent.jsonl"), FT, make_model())


def test_file_over_the_training_size_bound(write, make_model):
    uri = write([chat()] * 10)
    size = Path(uri).stat().st_size
    assert check(write, make_model(train_bytes_max=100), [chat()] * 10) == [
        (None, None, f"file is {size:,} bytes ({size / 1000:.1f} kB); training data for family test-family "
                     "may be at most 100 bytes")
    ]


def test_file_over_the_validation_size_bound_uses_the_validation_bound(write, make_model):
    model = make_model(train_bytes_max=1, validation_bytes_max=2_000_000)
    assert check(write, model, [chat()], purpose="validation") == []
    model = make_model(train_bytes_max=2_000_000, validation_bytes_max=1_500)
    problems = check(write, model, [chat()] * 40, purpose="validation")
    assert problems == [(None, None, "file is 4,080 bytes (4.1 kB); validation data for family test-family "
                                   "may be at most 1,500 bytes (1.5 kB)")]


def test_non_utf8_bytes_name_the_line(tmp_path, make_model):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(chat()).encode() + b"\n" + '{"x": "café"}'.encode("latin-1") + b"\n")
    report = validate(str(path), FT, make_model())
    assert found(report) == [(2, None, "not valid UTF-8: byte 0xe9 at column 11")]
    assert report.record_count == 2


def test_blank_lines_are_problems_and_not_records(write, make_model):
    report = validate(write([chat(), "", "   ", chat()]), FT, make_model())
    assert found(report) == [
        (2, None, "blank line; every line must hold one JSON record"),
        (3, None, "blank line; every line must hold one JSON record"),
    ]
    assert report.record_count == 2


def test_invalid_json_names_the_line_and_the_parsers_reason(write, make_model):
    assert check(write, make_model(), [chat(), chat(), '{"messages": [] "x": 1}']) == [
        (3, None, "invalid JSON: Expecting ',' delimiter (column 17)")
    ]


def test_json_that_is_not_an_object(write, make_model):
    assert check(write, make_model(), [chat(), [1, 2], '"text"']) == [
        (2, None, "expected a JSON object, got array"),
        (3, None, "expected a JSON object, got string"),
    ]


def test_s3_uris_read_the_local_bucket(tailor_home, make_model):
    path = tailor_home / "buckets" / "my-bucket" / "train" / "data.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(chat()) + "\n")
    assert validate("s3://my-bucket/train/data.jsonl", FT, make_model()).ok


def test_an_unsupported_customization_type_is_invalid_input(write, haiku):
    with pytest.raises(InvalidInput, match=r"^Family anthropic.claude-3-haiku does not support "
                                           r"CONTINUED_PRE_TRAINING \(supported: FINE_TUNING\)\.$"):
        validate(write([{"input": "text"}]), CPT, haiku)


# ---- the schema ----------------------------------------------------------------------------


def test_missing_keys(write, make_model):
    lines = [{"system": "s"}, {"messages": [{"role": "user"}, {"content": "4"}]}]
    assert check(write, make_model(), lines) == [
        (1, "messages", "required key is missing"),
        (2, "messages[0].content", "required key is missing"),
        (2, "messages[1].role", "required key is missing"),
    ]


def test_unexpected_keys(write, make_model):
    line = chat(metadata={"id": 1})
    line["messages"][1]["name"] = "bot"
    assert check(write, make_model(), [line]) == [
        (1, "messages[1].name", "unexpected key (allowed: role, content)"),
        (1, "metadata", "unexpected key (allowed: system, messages)"),
    ]


def test_wrong_types(write, make_model):
    lines = [
        {"system": 5, "messages": [{"role": "user", "content": ["hi"]}, {"role": "assistant", "content": 4}]},
        {"messages": "hello"},
        {"messages": ["hello", None]},
    ]
    assert check(write, make_model(), lines) == [
        (1, "system", "must be a string, got number"),
        (1, "messages[0].content", "must be a string, got array"),
        (1, "messages[1].content", "must be a string, got number"),
        (2, "messages", "must be an array, got string"),
        (3, "messages[0]", "must be an object, got string"),
        (3, "messages[1]", "must be an object, got null"),
    ]


def test_roles_other_than_user_and_assistant(write, make_model):
    line = {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "Be brief."},
                         {"role": "tool", "content": "hello"}]}
    assert check(write, make_model(), [line]) == [
        (1, "messages[1].role", "must be 'user' or 'assistant', got 'system'"),
        (1, "messages[2].role", "must be 'user' or 'assistant', got 'tool'"),
    ]


# ---- a system prompt written as the first message (OpenAI chat files) ---------------------


def openai_chat(system_message, question: str = "What is 2 + 2?", answer: str = "4.", **extra) -> dict:
    return {"messages": [{"role": "system", "content": system_message}, *chat(question, answer)["messages"]],
            **extra}


def test_a_system_message_first_becomes_the_system_field(write, make_model, tokenizer):
    """Each line is accepted, one note says how many were read this way, and training gets records
    with the system prompt where this format keeps it: rendered, they are the file's conversation."""
    uri = write([openai_chat("Be brief."), chat(), openai_chat("Be kind.", "Hi?", "Hello.")])
    report = validate(uri, FT, make_model())
    assert report.ok and report.problems == []
    assert report.notes == ('2 lines gave the system prompt as the first message ({"role": "system", ...}, as '
                            "OpenAI chat files do); each was read as the record's \"system\" field, where this "
                            "format keeps it, and training uses it as the system prompt",)
    assert report.render().splitlines()[1] == f"  note: {report.notes[0]}"
    assert report.to_dict()["notes"] == list(report.notes)

    records = load_records(uri, FT, make_model(), purpose="training")
    assert records[0] == MessagesRecord.model_validate(chat(system="Be brief."))
    assert records[1].system is None
    assert chat_messages(records[2]) == openai_chat("Be kind.", "Hi?", "Hello.")["messages"]
    # What training renders (tokens and loss mask) is the same as for the top-level form.
    assert chat_example(tokenizer, chat_messages(records[0])) == \
        chat_example(tokenizer, chat_messages(MessagesRecord.model_validate(chat(system="Be brief."))))


def test_problems_of_a_lifted_record_name_the_files_own_fields(write, make_model):
    lines = [
        {"messages": [{"role": "system", "content": "s"}, *turns("user", "user")["messages"]]},
        openai_chat(["Be", "brief"]),
        openai_chat("Be brief.", system="Be kind."),
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]},
        {"messages": [{"role": "system", "content": "s", "name": "x"}, *chat()["messages"]]},
        openai_chat("Rules\nHuman: x"),
        {"messages": [{"role": "system"}, *chat()["messages"]]},
    ]
    assert check(write, make_model(), lines) == [
        (1, "messages[2].role", "expected 'assistant' after 'user', got 'user'"),
        (2, "messages[0].content", "must be a string, got array"),
        (3, "system", "the system prompt is given twice, here and as the first message; keep one"),
        (4, "messages", "needs at least 2 messages (a user turn, then an assistant turn), got 1 besides the "
                        "system message"),
        (5, "messages[0].name", "unexpected key (allowed: role, content)"),
        (6, "messages[0].content", "contains the reserved string '\\nHuman:'; rephrase it or drop the colon"),
        (7, "messages[0].content", "required key is missing"),
    ]


def test_a_family_without_a_system_prompt_refuses_it_and_says_where_it_goes(write, make_model):
    plain = replace(make_model(), family=replace(make_model().family, name="plain", system_prompt=False))
    assert check(write, plain, [openai_chat("Be brief."), chat(system="Be brief."), chat()]) == [
        (1, "messages[0].role", "family plain takes no system prompt; put its instructions at the start of the "
                                "first user message"),
        (2, "system", "family plain takes no system prompt; put its instructions at the start of the first "
                      "user message"),
    ]
    # A prompt/completion family is told in the format mix-up message.
    llama = replace(make_model(), family=FAMILIES["meta.llama"])
    [(line, field, message)] = check(write, llama, [openai_chat("Be brief.")])
    assert message == ("record has keys 'messages', the messages format, but family meta.llama takes "
                       "prompt_completion records for FINE_TUNING; they have no system prompt, so put its "
                       "instructions at the start of each prompt")


# ---- a problem on many lines ---------------------------------------------------------------


def test_a_problem_on_every_line_is_rendered_once_with_its_lines(write, make_model):
    uri = write([chat("")] * 500 + [turns("user", "user"), chat(""), turns("user", "user")])
    report = validate(uri, FT, make_model())
    assert len(report.problems) == 503  # programs still get every line (to_dict, the API)
    assert len(report.to_dict()["problems"]) == 503
    assert report.render().splitlines() == [
        f"{uri}: 503 problems in 503 records (training data, messages format)",
        f"  {uri}: lines 1, 2, 3 and 498 more: messages[0].content: must not be empty or only whitespace",
        f"  {uri}: lines 501 and 503: messages[1].role: expected 'assistant' after 'user', got 'user'",
    ]
    report = validate(write([chat("")] * 4 + [{"messages": []}]), FT, make_model())
    assert report.render().splitlines()[1:] == [
        f"  {report.file}: lines 1, 2, 3 and 4: messages[0].content: must not be empty or only whitespace",
        f"  {report.file}: line 5: messages: needs at least 2 messages (a user turn, then an assistant turn), "
        "got 0",
    ]


def test_roles_must_alternate(write, make_model):
    assert check(write, make_model(), [turns("user", "assistant", "assistant", "user", "user", "assistant")]) == [
        (1, "messages[2].role", "expected 'user' after 'assistant', got 'assistant'"),
        (1, "messages[4].role", "expected 'assistant' after 'user', got 'user'"),
    ]


def test_first_message_must_be_user(write, make_model):
    assert check(write, make_model(), [turns("assistant", "user", "assistant")]) == [
        (1, "messages[0].role", "the first message must be 'user', got 'assistant'"),
    ]


def test_last_message_must_be_assistant(write, make_model):
    assert check(write, make_model(), [turns("user", "assistant", "user")]) == [
        (1, "messages[2].role", "the last message must be 'assistant', got 'user'"),
    ]


def test_fewer_than_two_messages(write, make_model):
    assert check(write, make_model(), [turns("user"), {"messages": []}]) == [
        (1, "messages", "needs at least 2 messages (a user turn, then an assistant turn), got 1"),
        (2, "messages", "needs at least 2 messages (a user turn, then an assistant turn), got 0"),
    ]


def test_empty_or_whitespace_content(write, make_model):
    assert check(write, make_model(), [chat("", " \n\t")]) == [
        (1, "messages[0].content", "must not be empty or only whitespace"),
        (1, "messages[1].content", "must not be empty or only whitespace"),
    ]


def test_reserved_strings_in_system_and_content(write, make_model):
    line = chat("Say\nHuman: hi", "ok\nAssistant: done\nHuman: more", system="Rules\nAssistant: x")
    assert check(write, make_model(), [line]) == [
        (1, "system", "contains the reserved string '\\nAssistant:'; rephrase it or drop the colon"),
        (1, "messages[0].content", "contains the reserved string '\\nHuman:'; rephrase it or drop the colon"),
        (1, "messages[1].content", "contains the reserved string '\\nHuman:'; rephrase it or drop the colon"),
        (1, "messages[1].content", "contains the reserved string '\\nAssistant:'; rephrase it or drop the colon"),
    ]


def test_reserved_strings_are_only_checked_in_the_messages_format(write, make_model):
    model = make_model(formats=(DataFormat.PROMPT_COMPLETION,))
    assert check(write, model, [{"prompt": "a\nHuman: b", "completion": "c"}]) == []


def test_prompt_completion_schema_and_empties(write, make_model):
    model = make_model(formats=(DataFormat.PROMPT_COMPLETION,))
    lines = [{"prompt": "q", "completion": "a"}, {"prompt": " ", "completion": 3},
             {"prompt": "q", "completion": "", "label": "x"}]
    assert check(write, model, lines) == [
        (2, "completion", "must be a string, got number"),
        (2, "prompt", "must not be empty or only whitespace"),
        (3, "label", "unexpected key (allowed: prompt, completion)"),
        (3, "completion", "must not be empty or only whitespace"),
    ]


def test_text_records_for_continued_pre_training(write, make_model):
    report = validate(write([{"input": "Some text."}, {"input": ""}, {"text": "x"}]), CPT, make_model())
    assert report.format is DataFormat.TEXT
    assert found(report) == [
        (2, "input", "must not be empty or only whitespace"),
        (3, "input", "required key is missing"),
        (3, "text", "unexpected key (allowed: input)"),
    ]


# ---- the format of a file ------------------------------------------------------------------


def test_two_format_family_takes_the_format_of_the_first_record(write, make_model):
    model = make_model(formats=(DataFormat.MESSAGES, DataFormat.PROMPT_COMPLETION))
    report = validate(write(["", {"prompt": "q", "completion": "a"}, chat()]), FT, model)
    assert report.format is DataFormat.PROMPT_COMPLETION
    assert found(report) == [
        (1, None, "blank line; every line must hold one JSON record"),
        (3, None, "record has keys 'messages', the messages format, but this file is in the "
                  "prompt_completion format (decided by line 2)"),
    ]
    report = validate(write([chat(), {"prompt": "q", "completion": "a"}]), FT, model)
    assert report.format is DataFormat.MESSAGES
    assert found(report) == [
        (2, None, "record has keys 'prompt', 'completion', the prompt_completion format, but this "
                  "file is in the messages format (decided by line 1)"),
    ]


def test_a_record_of_another_format_in_a_single_format_family(write, make_model):
    assert check(write, make_model(), [{"prompt": "q", "completion": "a"}]) == [
        (1, None, "record has keys 'prompt', 'completion', the prompt_completion format, but family "
                  "test-family takes messages records for FINE_TUNING"),
    ]


def test_a_record_of_a_format_the_family_does_not_take_does_not_decide_the_format(write, tailor_family_model):
    report = validate(write([{"input": "text"}] + [chat()] * 8), FT, tailor_family_model)
    assert report.format is DataFormat.MESSAGES
    assert found(report) == [
        (1, None, "record has keys 'input', the text format, but family tailor takes messages or "
                  "prompt_completion records for FINE_TUNING"),
    ]


def test_unrecognized_keys_are_checked_against_the_first_accepted_format(write, tailor_family_model):
    report = validate(write([{"question": "q", "answer": "a"}] * 8), FT, tailor_family_model)
    assert report.format is None
    assert found(report)[:3] == [
        (1, "messages", "required key is missing"),
        (1, "question", "unexpected key (allowed: system, messages)"),
        (1, "answer", "unexpected key (allowed: system, messages)"),
    ]


def test_the_tailor_family_accepts_either_format(write, tailor_family_model):
    many = [{"prompt": f"q{i}", "completion": "a"} for i in range(8)]
    assert validate(write(many), FT, tailor_family_model).format is DataFormat.PROMPT_COMPLETION
    assert validate(write([chat()] * 8), FT, tailor_family_model).format is DataFormat.MESSAGES


# ---- all problems, sorted ------------------------------------------------------------------


def test_a_broken_file_reports_every_problem_sorted_by_line(write, haiku):
    lines = [
        chat(),
        '{"messages": [}',
        turns("user", "user"),
        "",
        {"messages": [{"role": "bot", "content": ""}, {"role": "assistant", "content": 1}], "extra": 1},
        chat("a\nHuman: b"),
    ]
    report = validate(write(lines), FT, haiku)
    assert found(report) == [
        (None, None, "file has 5 records; training data for family anthropic.claude-3-haiku needs at least 32"),
        (2, None, "invalid JSON: Expecting value (column 15)"),
        (3, "messages[1].role", "expected 'assistant' after 'user', got 'user'"),
        (4, None, "blank line; every line must hold one JSON record"),
        (5, "messages[0].role", "must be 'user' or 'assistant', got 'bot'"),
        (5, "messages[1].content", "must be a string, got number"),
        (5, "extra", "unexpected key (allowed: system, messages)"),
        (5, "messages[0].content", "must not be empty or only whitespace"),
        (6, "messages[0].content", "contains the reserved string '\\nHuman:'; rephrase it or drop the colon"),
    ]
    lines_found = [problem.line or 0 for problem in report.problems]
    assert lines_found == sorted(lines_found)
    assert not report.ok


# ---- row counts ----------------------------------------------------------------------------


def test_haiku_training_needs_32_records(write, haiku):
    assert check(write, haiku, [chat()] * 31) == [
        (None, None, "file has 31 records; training data for family anthropic.claude-3-haiku needs at least 32"),
    ]
    assert check(write, haiku, [chat()] * 12) == [
        (None, None, "file has 12 records; training data for family anthropic.claude-3-haiku needs at least 32"),
    ]


def test_haiku_validation_bounds(write, haiku):
    assert check(write, haiku, [chat()] * 31, purpose="validation") == [
        (None, None, "file has 31 records; validation data for family anthropic.claude-3-haiku needs at least 32"),
    ]
    assert check(write, haiku, [chat()] * 1_001, purpose="validation") == [
        (None, None, "file has 1,001 records; validation data for family anthropic.claude-3-haiku "
                     "allows at most 1,000"),
    ]
    assert check(write, haiku, [chat()] * 1_000, purpose="validation") == []


def test_an_empty_file_has_no_records(write, make_model):
    assert check(write, make_model(), []) == [
        (None, None, "file has 0 records; training data for family test-family needs at least 1"),
    ]


def test_training_maximum_and_broken_lines_count_as_records(write, make_model):
    model = make_model(train_records=(1, 3))
    assert check(write, model, [chat(), chat(), "not json", chat(), ""]) == [
        (None, None, "file has 4 records; training data for family test-family allows at most 3"),
        (3, None, "invalid JSON: Expecting value (column 1)"),
        (5, None, "blank line; every line must hold one JSON record"),
    ]


def test_training_plus_validation_total(write, make_model):
    model = make_model(train_records=(1, 5), validation_records=(1, 5), total_records_max=6)
    training = write([chat()] * 4, "train.jsonl")
    first, second = write([chat()] * 2, "val1.jsonl"), write([chat()] * 1, "val2.jsonl")
    reports = validate_dataset(training, [first, second], FT, model)
    assert [report.purpose for report in reports] == ["training", "validation", "validation"]
    assert [str(problem) for problem in reports[0].problems] == [
        f"{training}: training and validation data together have 7 records (4 + 3); "
        "family test-family allows at most 6",
    ]
    assert reports[1].ok and reports[2].ok
    assert all(report.ok for report in validate_dataset(training, [first], FT, model))


def test_haiku_total_of_ten_thousand(write, haiku):
    training = write([chat()] * 9_990, "train.jsonl")
    validation = write([chat()] * 32, "val.jsonl")
    reports = validate_dataset(training, [validation], FT, haiku)
    assert found(reports[0]) == [
        (None, None, "training and validation data together have 10,022 records (9,990 + 32); "
                     "family anthropic.claude-3-haiku allows at most 10,000"),
    ]


# ---- tokens --------------------------------------------------------------------------------


def test_token_limit_with_the_models_tokenizer(write, make_model, tokenizer):
    model = make_model(record_tokens_max=30)
    long = chat("Tell me about the Python standard library and its modules.",
                "It has many modules for files, text, networking and more.", system="Be brief.")
    short = chat("Hi", "Hello")
    conversation = [{"role": "system", "content": "Be brief."}, *long["messages"]]
    expected = len(tokenizer.apply_chat_template(conversation, tokenize=True)["input_ids"])
    assert expected > 30
    assert check(write, model, [short, long], tokenizer=tokenizer) == [
        (2, None, f"record is {expected} tokens with the model's tokenizer; the limit is 30 "
                  "(family test-family)"),
    ]


def test_the_system_prompt_is_counted_first(tokenizer):
    plain = MessagesRecord.model_validate(chat())
    with_system = MessagesRecord.model_validate(chat(system="You answer arithmetic questions."))
    ids = tokenizer.apply_chat_template(
        [{"role": "system", "content": "You answer arithmetic questions."}, *chat()["messages"]],
        tokenize=True)["input_ids"]
    assert count_tokens(with_system, tokenizer) == len(ids) > count_tokens(plain, tokenizer)


def test_prompt_completion_and_text_are_counted_with_the_tokenizer(tokenizer):
    pair = PromptCompletionRecord(prompt="What is 2 + 2?", completion="4.")
    assert count_tokens(pair, tokenizer) == count_tokens(MessagesRecord.model_validate(chat()), tokenizer)
    text = TextRecord(input="def main():\n    return 0\n")
    assert count_tokens(text, tokenizer) == len(tokenizer(text.input)["input_ids"])


def test_the_tokenizers_context_is_a_limit_too(write, make_model, tokenizer):
    assert tokenizer.model_max_length == 1024
    long = chat("word " * 1_500, "ok")
    count = count_tokens(MessagesRecord.model_validate(long), tokenizer)
    assert check(write, make_model(), [long], tokenizer=tokenizer) == [
        (1, None, f"record is {count:,} tokens with the model's tokenizer; the limit is 1,024 "
                  "(the tokenizer's model_max_length)"),
    ]
    # The smaller bound wins: a family bound above the context does not lift it.
    assert check(write, make_model(record_tokens_max=5_000), [long], tokenizer=tokenizer)[0][2].endswith(
        "the limit is 1,024 (the tokenizer's model_max_length)")


def test_an_unbounded_tokenizer_sentinel_is_ignored(write, make_model, tokenizer):
    saved = tokenizer.model_max_length
    tokenizer.model_max_length = int(1e30)  # what tokenizers without a limit report
    try:
        assert check(write, make_model(), [chat("word " * 1_500, "ok")], tokenizer=tokenizer) == []
    finally:
        tokenizer.model_max_length = saved


def test_without_a_tokenizer_the_count_is_estimated(write, haiku):
    lines = [chat(f"question {i}") for i in range(32)]
    lines[4] = chat("x" * 60_000, "y" * 36_003, system="z" * 3)  # 20,000 + 12,001 + 1 tokens
    assert check(write, haiku, lines) == [
        (5, None, "record is an estimated 32,002 tokens (characters / 3, no tokenizer given); "
                  "the limit is 32,000 (family anthropic.claude-3-haiku)"),
    ]


def test_no_limit_no_token_check(write, make_model):
    assert check(write, make_model(), [chat("x" * 100_000)]) == []


# ---- load_records, reports -----------------------------------------------------------------


def test_load_records_returns_typed_records(write, make_model):
    records = load_records(write([chat(), chat(system="s")]), FT, make_model(), purpose="training")
    assert all(isinstance(record, MessagesRecord) for record in records)
    assert records[1].system == "s" and records[0].messages[1].content == "4."


def test_load_records_raises_with_the_report(write, make_model):
    uri = write([chat(), turns("user", "user")])
    with pytest.raises(InvalidInput) as raised:
        load_records(uri, FT, make_model(), purpose="training")
    assert raised.value.message == (
        f"{uri}: 1 problem in 2 records (training data, messages format)\n"
        f"  {uri}: line 2: messages[1].role: expected 'assistant' after 'user', got 'user'"
    )


def test_problem_text_omits_missing_parts():
    assert str(Problem("f.jsonl", 3, "messages[0].role", "bad")) == "f.jsonl: line 3: messages[0].role: bad"
    assert str(Problem("f.jsonl", 3, None, "bad")) == "f.jsonl: line 3: bad"
    assert str(Problem("f.jsonl", None, None, "bad")) == "f.jsonl: bad"


def test_report_to_dict_is_json(write, make_model):
    report = validate(write([chat(), [1]]), FT, make_model(), purpose="validation")
    assert json.loads(json.dumps(report.to_dict())) == {
        "file": report.file,
        "purpose": "validation",
        "format": "messages",
        "record_count": 2,
        "ok": False,
        "problems": [{"line": 2, "field": None, "message": "expected a JSON object, got array"}],
        "notes": [],
    }


def test_haiku_family_limits_match_the_spec():
    limits = FAMILIES["anthropic.claude-3-haiku"].limits
    assert (limits.train_records, limits.validation_records, limits.total_records_max) == (
        (32, 10_000), (32, 1_000), 10_000)
    assert limits.record_tokens_max == 32_000


# ---- reinforcement fine-tuning prompts -----------------------------------------------------


LAST_TURN = "the last message must be 'user' (the model writes the turn after it), got "


def prompt(question: str = "What is 2 + 2?", reference=4, system: str | None = None, **extra) -> dict:
    messages = [{"role": "user", "content": question}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return {"messages": messages, "reference_answer": reference, **extra}


def rft_model(family_name: str = "tailor", **limits) -> ResolvedModel:
    """A model of a catalog family, or of a test family whose RFT limits are ``limits``."""
    weights = FOUNDATION_MODELS["tailor.tiny"].weights
    if family_name in FAMILIES:
        family = FAMILIES[family_name]
    else:
        family = Family(name=family_name, description="a family for tests", formats={RFT: (DataFormat.RFT_CHAT,)},
                        limits=DataLimits(), limits_by_type={RFT: DataLimits(**limits)})
    return ResolvedModel(f"test.{family.name}", family, weights, tuple(family.formats))


def test_a_valid_rft_file_passes(write):
    lines = [
        prompt(),
        prompt(system="Answer with a number.", task_id="t-2", domain="math"),
        prompt(reference={"answer": "4", "steps": ["2 + 2"]}),
        {"messages": [{"role": "user", "content": "2 + 2?"}], "metadata": {"reference_answer": "4", "k": 1}},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2 + 2?"}],
         "reference_answer": "4"},
        prompt(reference=0), prompt(reference=False), prompt(reference=[]),  # any JSON but null
    ]
    report = validate(write(lines), RFT, rft_model())
    assert report.ok, report.render()
    assert (report.format, report.record_count) == (DataFormat.RFT_CHAT, 8)
    assert report.render().endswith("OK, 8 records (training data, rft_chat format)")


def test_rft_prompt_conversation_rules(write):
    lines = [
        {"reference_answer": 4},
        {"messages": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}],
         "reference_answer": 4},
        {"messages": [{"role": "tool", "content": "x"}, {"role": "user", "content": " "}], "reference_answer": 4},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "2 + 2?"}], "reference_answer": 4},
        {"messages": [{"role": "system", "content": "Be brief."}], "reference_answer": 4},
        {"messages": [], "reference_answer": 4},
        {"messages": "2 + 2?", "reference_answer": 4},
        {"messages": [{"role": "user", "content": 4, "name": "me"}, None], "reference_answer": 4},
        {"system": "Be brief.", **prompt()},
    ]
    assert check(write, rft_model(), [*lines, *[prompt()] * 7], RFT) == [
        (1, "messages", "required key is missing"),
        (2, "messages[1].role", LAST_TURN + "'assistant'"),
        (3, "messages[0].role", "must be 'system', 'user' or 'assistant', got 'tool'"),
        (3, "messages[1].content", "must not be empty or only whitespace"),
        (4, "messages[1].role", "a system message may only be the first message"),
        (5, "messages[0].role", LAST_TURN + "'system'"),
        (6, "messages", "needs at least 1 message (the user's turn), got 0"),
        (7, "messages", "must be an array, got string"),
        (8, "messages[0].content", "must be a string, got number"),
        (8, "messages[0].name", "unexpected key (allowed: role, content)"),
        (8, "messages[1]", "must be an object, got null"),
        (9, "system", 'put the system prompt in messages, as the first message {"role": "system", "content": ...}; '
                      "keys besides messages go to the grader, not to the model"),
    ]


def test_rft_reference_answer_rules(write):
    lines = [
        {"messages": [{"role": "user", "content": "2 + 2?"}], "answer": 4},
        prompt(reference=None),
        prompt(reference=" "),
        {**prompt(), "metadata": {"reference_answer": 4}},
        {"messages": [{"role": "user", "content": "2 + 2?"}], "metadata": {"reference_answer": None}},
        {"messages": [{"role": "user", "content": "2 + 2?"}], "metadata": "4"},
    ]
    missing = ("required key is missing (at the top level or under metadata); it is what the grader compares "
               "the model's answer with")
    assert check(write, rft_model(), [*lines, *[prompt()] * 2], RFT) == [
        (1, "reference_answer", missing),
        (2, "reference_answer", "must not be null"),
        (3, "reference_answer", "must not be empty or only whitespace"),
        (4, "reference_answer", "given twice, here and under metadata; keep one"),
        (5, "metadata.reference_answer", "must not be null"),
        (6, "metadata", "must be an object, got string"),
        (6, "reference_answer", missing),
    ]


def test_rft_file_lines_that_are_no_records(write):
    assert check(write, rft_model(), [prompt(), [prompt()], "not json", "", *[prompt()] * 6], RFT) == [
        (2, None, "expected a JSON object, got array"),
        (3, None, "invalid JSON: Expecting value (column 1)"),
        (4, None, "blank line; every line must hold one JSON record"),
    ]


def test_the_rft_format_comes_from_the_customization_type(write):
    # A fine-tuning record in an RFT file is checked as an RFT prompt: the problems are what it lacks.
    assert check(write, rft_model(), [chat(), *[prompt()] * 7], RFT) == [
        (1, "messages[1].role", LAST_TURN + "'assistant'"),
        (1, "reference_answer", "required key is missing (at the top level or under metadata); it is what the "
                                "grader compares the model's answer with"),
    ]
    assert check(write, rft_model(), [{"prompt": "q", "completion": "a"}, *[prompt()] * 7], RFT) == [
        (1, None, "record has keys 'prompt', 'completion', the prompt_completion format, but family tailor "
                  "takes rft_chat records for REINFORCEMENT_FINE_TUNING"),
    ]


def test_an_rft_prompt_in_a_fine_tuning_file(write, tailor_family_model):
    assert check(write, tailor_family_model, [prompt(), *[chat()] * 7]) == [
        (1, None, "record has keys 'messages', 'reference_answer', the rft_chat format, but family tailor "
                  "takes messages or prompt_completion records for FINE_TUNING"),
    ]
    # It never decides a file's format: the family does not take it for fine-tuning.
    report = validate(write([prompt(), *[chat()] * 8]), FT, tailor_family_model)
    assert report.format is DataFormat.MESSAGES
    assert [problem.line for problem in report.problems] == [1]


def test_nova_takes_single_turn_prompts(write):
    nova = rft_model("amazon.nova-2")
    multi_turn = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                               {"role": "user", "content": "2 + 2?"}], "reference_answer": 4}
    lines = [prompt(system="Be brief."), multi_turn, *[prompt()] * 98]
    assert check(write, nova, lines, RFT) == [
        (2, "messages", "family amazon.nova-2 takes single-turn prompts: an optional system message, then one "
                        "user message; got 3 turns"),
    ]
    assert check(write, rft_model("openai.gpt-oss"), lines, RFT) == []


def test_rft_record_counts(write):
    assert check(write, rft_model(), [prompt()] * 7, RFT) == [
        (None, None, "file has 7 records; training data for family tailor needs at least 8"),
    ]
    assert check(write, rft_model("qwen.qwen3"), [prompt()] * 99, RFT) == [
        (None, None, "file has 99 records; training data for family qwen.qwen3 needs at least 100"),
    ]
    assert check(write, rft_model(), [prompt()] * 1_001, RFT, purpose="validation") == [
        (None, None, "file has 1,001 records; validation data for family tailor allows at most 1,000"),
    ]
    small = rft_model("test-rft", train_records=(1, 3), validation_records=(1, 2), total_records_max=4)
    assert check(write, small, [prompt()] * 4, RFT) == [
        (None, None, "file has 4 records; training data for family test-rft allows at most 3"),
    ]
    reports = validate_dataset(write([prompt()] * 3, "t.jsonl"), [write([prompt()] * 2, "v.jsonl")], RFT, small)
    assert [problem.message for problem in reports[0].problems] == [
        "training and validation data together have 5 records (3 + 2); family test-rft allows at most 4"]


def test_rft_limits_are_not_the_fine_tuning_limits(write, tailor_family_model):
    # tailor takes up to 10,000 fine-tuning records but 20,000 RFT prompts; one file proves the split.
    assert check(write, tailor_family_model, [prompt()] * 10_001, RFT) == []
    assert check(write, tailor_family_model, [chat()] * 10_001) == [
        (None, None, "file has 10,001 records; training data for family tailor allows at most 10,000"),
    ]


def test_rft_prompt_tokens(write, tokenizer):
    long = prompt("Tell me about the Python standard library and its modules, please.", system="Be brief.")
    record = RftRecord.model_validate(long)
    ids = tokenizer.apply_chat_template(rft_prompt(record), tokenize=True, add_generation_prompt=True)["input_ids"]
    assert count_tokens(record, tokenizer) == len(ids) > 10
    model = rft_model("test-rft", record_tokens_max=10)
    assert check(write, model, [prompt("Hi"), long], RFT, tokenizer=tokenizer) == [
        (2, None, f"record is {len(ids)} tokens with the model's tokenizer; the limit is 10 (family test-rft)"),
    ]
    assert check(write, model, [prompt("x" * 33)], RFT) == [  # estimated: contents only, characters / 3
        (1, None, "record is an estimated 11 tokens (characters / 3, no tokenizer given); the limit is 10 "
                  "(family test-rft)"),
    ]
    # Without a family bound, the tokenizer's context still applies.
    assert check(write, rft_model(), [prompt("word " * 1_500), *[prompt()] * 7], RFT, tokenizer=tokenizer)[0][2] \
        .endswith("the limit is 1,024 (the tokenizer's model_max_length)")


def test_load_records_returns_typed_rft_prompts(write):
    records = load_records(write([prompt(task_id="t-1")] * 8), RFT, rft_model(), purpose="training")
    assert all(isinstance(record, RftRecord) for record in records)
    assert records[0].model_extra == {"task_id": "t-1"} and records[0].reference_answer == 4


def test_rft_for_a_family_without_it_is_invalid_input(write, haiku):
    with pytest.raises(InvalidInput, match=r"^Family anthropic.claude-3-haiku does not support "
                                           r"REINFORCEMENT_FINE_TUNING \(supported: FINE_TUNING\)\.$"):
        validate(write([prompt()]), RFT, haiku)
    with pytest.raises(InvalidInput, match=r"^Family openai.gpt-oss does not support FINE_TUNING "
                                           r"\(supported: REINFORCEMENT_FINE_TUNING\)\.$"):
        validate(write([chat()]), FT, rft_model("openai.gpt-oss"))
