"""OpenAI's chat fine-tuning lines in the messages format of the ``tailor`` family: developer
messages, text parts, per-message weights, tools, tool calls and tool messages; every problem by
line and field; weight-0 turns unlabelled; tools rendered by a real chat template (Qwen 2.5's, as
the model ships it) and refused where the template cannot render them; RFT prompts without a
reference answer for graders that need none. Real tokenizers throughout."""

from __future__ import annotations

import json

import pytest

from tailor import tiny
from tailor.architectures import ARCHITECTURES, train_tokenizer
from tailor.catalog import CustomizationType, DataFormat
from tailor.data.formats import (
    ChatRecord,
    MessagesRecord,
    RftRecord,
    chat_messages,
    chat_tools,
    rft_prompt,
)
from tailor.data.render import (
    IGNORE_INDEX,
    chat_example,
    prompt_ids,
    renders_tool_calls,
    renders_tools,
)
from tailor.data.validate import count_tokens, load_records, validate, validate_dataset

FT = CustomizationType.FINE_TUNING
RFT = CustomizationType.REINFORCEMENT_FINE_TUNING

# Qwen 2.5 Instruct's chat template as the model ships it (tokenizer_config.json of
# Qwen/Qwen2.5-*-Instruct), tools and all; the small Qwen 2.5 test tokenizer carries a simplified
# one without tools (tailor.architectures).
QWEN25_TOOLS_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    "    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments "
    "within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": "
    "<args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or "
    "(message.role == \"assistant\" and not message.tool_calls) %}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    "            {{- '\\n<tool_call>\\n{\"name\": \"' }}\n"
    "            {{- tool_call.name }}\n"
    "            {{- '\", \"arguments\": ' }}\n"
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def user(content="What is 2 + 2?", **extra) -> dict:
    return {"role": "user", "content": content, **extra}


def assistant(content="4.", **extra) -> dict:
    return {"role": "assistant", "content": content, **extra}


def chat(question: str = "What is 2 + 2?", answer: str = "4.") -> dict:
    return {"messages": [user(question), assistant(answer)]}


def tool_line() -> dict:
    """A line as OpenAI's fine-tuning guide writes one: a developer message, text parts, a tool
    call with its arguments as JSON text, the tool's answer, the final answer."""
    return {"messages": [
        {"role": "developer", "content": "Answer briefly."},
        user([{"type": "text", "text": "Weather in Paris?"}]),
        assistant(None, tool_calls=[CALL]),
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        assistant("18 °C and sunny."),
    ], "tools": TOOLS, "parallel_tool_calls": False}


def weighted_line() -> dict:
    return {"messages": [user("What is Tailor?"), assistant("A platfrom.", weight=0),
                         user("Where does it run?"), assistant("On your machines.", weight=1)]}


def found(report) -> list[tuple]:
    return [(problem.line, problem.field, problem.message) for problem in report.problems]


def line_problems(report) -> list[tuple]:
    return [problem for problem in found(report) if problem[0] is not None]


def labelled_text(tokenizer, example) -> str:
    return tokenizer.decode([token for token, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX])


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)


@pytest.fixture(scope="module")
def qwen_plain():
    """The small Qwen 2.5 test tokenizer, with the simplified template that knows no tools."""
    return train_tokenizer(ARCHITECTURES["qwen2.5"], tiny.corpus_text()[:200_000])


@pytest.fixture(scope="module")
def qwen_tools():
    """The small Qwen 2.5 test tokenizer with Qwen 2.5's real template, tools and all."""
    tokenizer = train_tokenizer(ARCHITECTURES["qwen2.5"], tiny.corpus_text()[:200_000])
    tokenizer.chat_template = QWEN25_TOOLS_TEMPLATE
    return tokenizer


# ---- valid lines -----------------------------------------------------------------------------


def test_openai_chat_lines_are_messages_records_of_the_tailor_family(write, tailor_family_model, qwen_tools):
    uri = write([tool_line(), weighted_line(), *[chat(f"Question {i}?") for i in range(6)]])
    report = validate(uri, FT, tailor_family_model, tokenizer=qwen_tools)
    assert report.ok, report.render()
    assert report.format is DataFormat.MESSAGES
    assert report.notes[0].startswith("1 line gave the system prompt as the first message")

    records = load_records(uri, FT, tailor_family_model, purpose="training", tokenizer=qwen_tools)
    assert [type(record) for record in records] == [ChatRecord, ChatRecord, *[MessagesRecord] * 6]
    assert records[0].system == "Answer briefly."  # the developer message, as the system prompt
    assert chat_tools(records[0]) == TOOLS
    assert chat_messages(records[0]) == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "18 °C and sunny."},
    ]
    assert chat_messages(records[1])[1] == {"role": "assistant", "content": "A platfrom.", "weight": 0}
    assert chat_tools(records[1]) is None and chat_tools(records[2]) is None
    # A plain line is the very record it was before OpenAI's lines were taken.
    assert records[2] == MessagesRecord.model_validate(chat("Question 0?"))


def test_without_a_tokenizer_tools_are_noted_not_refused(write, tailor_family_model):
    report = validate(write([tool_line(), *[chat()] * 7]), FT, tailor_family_model)
    assert report.ok, report.render()
    assert report.notes[1] == ("1 line uses tools or tool calls; without the model's tokenizer, whether its chat "
                               "template can render them was not checked (training checks it)")


# ---- problems, by line and field, all at once --------------------------------------------------


def test_every_problem_of_a_file_by_line_and_field(write, tailor_family_model, qwen_tools):
    lines = [
        {"messages": [user(5), assistant()]},
        {"messages": [user([{"type": "image_url", "image_url": {"url": "x"}}]), assistant()]},
        {"messages": [user(weight=1), assistant(weight=2)]},
        {"messages": [user(), assistant(weight=True)]},
        {"messages": [user(), assistant(weight=0)]},
        {"messages": [user(), assistant(None, tool_calls=[{**CALL, "function": {"name": "f", "arguments": "{city: 1}"}}]),
                      {"role": "tool", "tool_call_id": "call_1", "content": "x"}, assistant()]},
        {"messages": [user(), assistant(None, tool_calls=[{**CALL, "function": {"name": "f", "arguments": "[1]"}}]),
                      {"role": "tool", "tool_call_id": "call_1", "content": "x"}, assistant()]},
        {"messages": [user(), assistant(None, tool_calls=[CALL]), {"role": "tool", "content": "x"}, assistant()]},
        {"messages": [user(), assistant(None, tool_calls=[CALL]), {"role": "tool", "tool_call_id": "call_2",
                                                                   "content": "x"}, assistant()]},
        {"messages": [user(), {"role": "tool", "tool_call_id": "call_1", "content": "x"}, assistant()]},
        {"messages": [user(), {"role": "bot", "content": "x"}, assistant()]},
        {"messages": [user(), {"role": "system", "content": "Be brief."}, assistant()]},
        {"messages": [user(), assistant(None, tool_calls=[CALL]), {"role": "tool", "tool_call_id": "call_1",
                                                                   "content": "x"}]},
        {"messages": [user(tool_calls=[CALL]), assistant()]},
        {"messages": [user(), assistant(None, tool_calls=[{**CALL, "function": {"name": "f",
                                                                                "arguments": {"city": "Paris"}}}])]},
        {**chat(), "tools": [{"type": "function", "function": {"description": "no name"}}]},
        {"messages": [user(None), assistant(tool_call_id="call_1")]},
        {"messages": [{"role": "developer", "content": "Be brief."}, user(weight=0), assistant(colour="red")]},
    ]
    report = validate(write(lines), FT, tailor_family_model, tokenizer=qwen_tools)
    arguments = "messages[1].tool_calls[0].function.arguments"
    assert found(report) == [
        (1, "messages[0].content", "must be a string, null or an array of text parts, got number"),
        (2, "messages[0].content[0].image_url", "unexpected key (allowed: type, text)"),
        (2, "messages[0].content[0].type", "must be 'text' (only text parts can be trained on), got 'image_url'"),
        (2, "messages[0].content[0].text", "required key is missing"),
        (3, "messages[0].weight", "only assistant messages have a weight (1: learn the turn, 0: context only)"),
        (3, "messages[1].weight", "must be 0 or 1, got 2"),
        (4, "messages[1].weight", "must be 0 or 1, got true"),
        (5, "messages", "every assistant message has weight 0, so there is nothing to learn; give the turns to "
                        "learn weight 1 (the default)"),
        (6, arguments, "must be valid JSON text (the arguments as a JSON object in a string): Expecting property "
                       "name enclosed in double quotes (column 2)"),
        (7, arguments, "must be a JSON object written as text, got a JSON array"),
        (8, "messages[2].tool_call_id", "required key is missing (the id of the tool call this message answers)"),
        (9, "messages[2].tool_call_id", "'call_2' is not the id of a tool call of the assistant message before it"),
        (10, "messages[1].role", "a tool message must follow an assistant message with tool_calls (or another tool "
                                 "message)"),
        (11, "messages[1].role", "must be 'system', 'developer', 'user', 'assistant' or 'tool', got 'bot'"),
        (12, "messages[1].role", "a system message may only be the first message"),
        (13, "messages[2].role", "the last message must be 'assistant', got 'tool'"),
        (14, "messages[0].tool_calls", "only assistant messages make tool calls"),
        (15, arguments, "must be a string, got object"),
        (16, "tools[0].function.name", "required key is missing"),
        (17, "messages[0].content", "must not be null (only an assistant message with tool_calls may have no "
                                    "content)"),
        (17, "messages[1].tool_call_id", "only tool messages answer a tool call"),
        (18, "messages[2].colour", "unexpected key (allowed: role, content, weight, tool_calls, tool_call_id, name)"),
        (18, "messages[1].weight", "only assistant messages have a weight (1: learn the turn, 0: context only)"),
    ]
    # Rendered for people: each problem on a line of its own, after the summary and the note.
    assert len([shown for shown in report.render().splitlines() if ": line " in shown]) == len(report.problems)


def test_a_chat_template_without_tools_refuses_them(write, tailor_family_model, tiny_tokenizer, qwen_plain):
    """tailor.tiny's template, and the simplified Qwen 2.5 one, never mention tools: a line that
    uses them is refused where each tool field is, before any training."""
    assert not renders_tools(tiny_tokenizer) and not renders_tool_calls(tiny_tokenizer)
    lines = [tool_line(), weighted_line(), *[chat()] * 6]
    template = "the model's chat template cannot render {} (it never mentions {}); train a model whose chat " \
               "template supports tools, or leave them out"
    for tokenizer in (tiny_tokenizer, qwen_plain):
        report = validate(write(lines), FT, tailor_family_model, tokenizer=tokenizer)
        assert found(report) == [
            (1, "tools", template.format("tools", "tools")),
            (1, "messages[2].tool_calls", template.format("tool calls", "tool_calls")),
            (1, "messages[3].role", template.format("tool messages", "tool_calls")),
        ]


def test_stricter_families_keep_their_rules(write, haiku, make_model):
    """OpenAI's extras are the tailor family's: Claude 3 Haiku (and a family like it) still take
    alternating user and assistant turns of text, with today's messages."""
    lines = [weighted_line(), tool_line(), *[chat()] * 30]
    for model in (haiku, make_model()):
        problems = line_problems(validate(write(lines), FT, model))
        assert problems[:2] == [(1, "messages[1].weight", "unexpected key (allowed: role, content)"),
                                (1, "messages[3].weight", "unexpected key (allowed: role, content)")]
        assert (2, "tools", "unexpected key (allowed: system, messages)") in problems
        assert (2, "messages[0].role", "must be 'user' or 'assistant', got 'developer'") in problems
        assert (2, "messages[3].role", "must be 'user' or 'assistant', got 'tool'") in problems
        assert (2, "messages[1].content", "must be a string, got array") in problems


# ---- rendering: weights and tools ---------------------------------------------------------------


def test_weight_zero_turns_are_context_without_labels(write, tailor_family_model, tiny_tokenizer, qwen_tools):
    uri = write([weighted_line(), *[chat()] * 7])
    record = load_records(uri, FT, tailor_family_model, purpose="training", tokenizer=tiny_tokenizer)[0]
    unmarked = tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)
    unmarked.chat_template = tiny.CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    for tokenizer, labelled in ((tiny_tokenizer, "On your machines.<|end|>"),  # generation markers
                                (unmarked, "On your machines.<|end|>"),  # rendered prefixes, diffed
                                (qwen_tools, "On your machines.<|im_end|>\n")):  # a real template, no markers
        example = chat_example(tokenizer, chat_messages(record))
        assert labelled_text(tokenizer, example) == labelled
        # The context turn is still there, in the tokens the model reads.
        assert "A platfrom." in tokenizer.decode(example.input_ids)
        # Without the weight, both answers are learned.
        both = chat_example(tokenizer, [{k: v for k, v in turn.items() if k != "weight"}
                                        for turn in chat_messages(record)])
        assert labelled_text(tokenizer, both).startswith("A platfrom.")
    assert chat_example(tiny_tokenizer, chat_messages(record)) == chat_example(unmarked, chat_messages(record))


def test_training_renders_the_weights_it_is_given(write, tailor_family_model, tiny_tokenizer):
    """The supervised recipe renders records through ``chat_messages`` and ``chat_example``, so
    a weight-0 turn reaches training as context with no change to the recipe."""
    from tailor.train.sft import examples_for

    records = load_records(write([weighted_line(), *[chat()] * 7]), FT, tailor_family_model, purpose="training")
    example = examples_for(records[:1], tiny_tokenizer)[0]
    assert labelled_text(tiny_tokenizer, example) == "On your machines.<|end|>"


def test_tool_calls_render_through_the_models_own_template(write, tailor_family_model, qwen_tools):
    uri = write([tool_line(), *[chat()] * 7])
    record = load_records(uri, FT, tailor_family_model, purpose="training", tokenizer=qwen_tools)[0]
    turns, tools = chat_messages(record), chat_tools(record)
    example = chat_example(qwen_tools, turns, tools=tools)
    text = qwen_tools.decode(example.input_ids)
    assert text.startswith("<|im_start|>system\nAnswer briefly.\n\n# Tools\n")
    assert json.dumps(TOOLS[0]) in text  # the tool definitions, in the system turn
    assert "<|im_start|>user\n<tool_response>\n18 C, sunny\n</tool_response><|im_end|>\n" in text
    # The loss covers the call (arguments as the template writes them) and the answer; not the
    # tool's response nor the question.
    assert labelled_text(qwen_tools, example) == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n'
        "18 °C and sunny.<|im_end|>\n")
    # Serving renders a prompt with the same tools as the prefix of what training rendered.
    for end in (2, 4):
        prompt = prompt_ids(qwen_tools, turns[:end], tools=tools)
        assert example.input_ids[: len(prompt)] == prompt
        assert example.labels[len(prompt)] == example.input_ids[len(prompt)]
    assert count_tokens(record, qwen_tools) == len(example.input_ids)
    without_tools = ChatRecord.model_validate({**record.model_dump(exclude_unset=True), "tools": None})
    assert count_tokens(without_tools, qwen_tools) < count_tokens(record, qwen_tools)


# ---- reinforcement fine-tuning prompts without a reference answer -------------------------------


def rft_line(**extra) -> dict:
    return {"messages": [{"role": "developer", "content": "Answer with a number."}, user()],
            "expected": "4", "task_id": "math-1", **extra}


def test_rft_prompts_without_a_reference_answer_validate_with_the_keyword(write, tailor_family_model):
    uri = write([rft_line(), *[rft_line(task_id=f"math-{i}") for i in range(2, 9)]])
    missing = ("required key is missing (at the top level or under metadata); it is what the grader compares "
               "the model's answer with")
    assert line_problems(validate(uri, RFT, tailor_family_model)) == [
        (line, "reference_answer", missing) for line in range(1, 9)]

    report = validate(uri, RFT, tailor_family_model, reference_required=False)
    assert report.ok, report.render()
    assert all(report.ok for report in validate_dataset(uri, [uri], RFT, tailor_family_model,
                                                        reference_required=False))
    records = load_records(uri, RFT, tailor_family_model, purpose="training", reference_required=False)
    assert isinstance(records[0], RftRecord)
    assert rft_prompt(records[0]) == [{"role": "system", "content": "Answer with a number."}, user()]
    assert records[0].expected == "4"  # what the grader reads


def test_rft_conversation_rules_hold_without_a_reference_answer(write, tailor_family_model):
    lines = [
        {"messages": [user(), {"role": "developer", "content": "Be brief."}, user()]},
        {"messages": [{"role": "developer", "content": "Be brief."}, user(), assistant()]},
        {"messages": [{"role": "system", "content": "Be brief."}, user(), assistant(), user()], "answer": 4},
        *[rft_line()] * 5,
    ]
    assert found(validate(write(lines), RFT, tailor_family_model, reference_required=False)) == [
        (1, "messages[1].role", "a developer message may only be the first message"),
        (2, "messages[2].role", "the last message must be 'user' (the model writes the turn after it), got "
                                "'assistant'"),
    ]


def test_the_keyword_changes_nothing_for_fine_tuning(write, tailor_family_model):
    uri = write([chat(), weighted_line(), {"messages": [user()]}, *[chat()] * 5])
    assert found(validate(uri, FT, tailor_family_model)) == \
        found(validate(uri, FT, tailor_family_model, reference_required=False))
