"""Records -> token ids and loss masks, with the model's own chat template.

Training and inference render through the same functions, so the tokens a deployed model sees
for a prompt are exactly the prefix of the tokens it was trained on (a test checks this).

- Chat records (messages, prompt/completion) are rendered with ``tokenizer.apply_chat_template``.
  The loss covers every assistant turn of a multi-turn record — each turn is a target the user
  wrote, and the earlier turns are context the model must also answer in (documented in
  docs/training.md) — except a turn marked ``"weight": 0`` (OpenAI's per-message weight), which
  is context only. Assistant tokens are found with the template's ``{% generation %}`` markers
  when it has them, otherwise by rendering each prefix of the conversation and diffing. Tools
  (OpenAI's tool definitions) and tool calls are rendered by the model's own template, which
  must know them (``renders_tools``; validation refuses them otherwise).
- A tokenizer with no chat template (a base model) gets ``prompt + completion + eos``.
- Unlabeled text (continued pre-training) is trained on every token, cut into windows of the
  model's context length.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy skips


@dataclass(frozen=True)
class Example:
    """One training sequence: token ids and their labels (IGNORE_INDEX where no loss is taken)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def target_count(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


def _template_text(tokenizer) -> str:
    """The chat template's source; a tokenizer may carry several named ones (a dict)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    return "\n".join(template.values()) if isinstance(template, dict) else template


def _has_generation_markers(tokenizer) -> bool:
    template = _template_text(tokenizer)
    return "{% generation %}" in template or "{%- generation" in template


def renders_tools(tokenizer) -> bool:
    """Whether the chat template writes the tools it is given: a template that never mentions
    ``tools`` drops them without a word, so validation refuses them (tailor.data.validate)."""
    return "tools" in _template_text(tokenizer)


def renders_tool_calls(tokenizer) -> bool:
    """Whether the chat template writes an assistant turn's ``tool_calls`` (and so the tool
    messages that answer them); one that never mentions them would train on an empty turn."""
    return "tool_calls" in _template_text(tokenizer)


def template_turns(turns: list[dict]) -> list[dict]:
    """The turns without ``weight``, which says what to learn and is never the template's."""
    return [{key: value for key, value in turn.items() if key != "weight"} for turn in turns]


def _learned(turn: dict) -> bool:
    return turn["role"] == "assistant" and turn.get("weight", 1) != 0


def chat_example(tokenizer, turns: list[dict], tools: list[dict] | None = None) -> Example:
    """Tokenize a chat; labels are the assistant turns' tokens (their end-of-turn included),
    except those of a turn with ``"weight": 0`` (OpenAI's per-message weight: a turn given as
    context, rendered but not learned). ``tools`` (OpenAI's tool definitions) go to the template
    as ``apply_chat_template(..., tools=tools)``; the turns carry their ``tool_calls``."""
    learned = [_learned(turn) for turn in turns]
    turns = template_turns(turns)
    if not tokenizer.chat_template:
        return _plain_example(tokenizer, turns, learned)
    if _has_generation_markers(tokenizer):
        encoded = tokenizer.apply_chat_template(
            turns, tools=tools, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(encoded["input_ids"])
        mask = encoded["assistant_masks"]
        labels = [token if keep else IGNORE_INDEX for token, keep in zip(ids, mask)]
        for index, turn in enumerate(turns):
            if turn["role"] == "assistant" and not learned[index]:
                start, end = _turn_span(tokenizer, turns, index, tools)
                labels[start:end] = [IGNORE_INDEX] * len(labels[start:end])
        return Example(ids, labels)
    ids = _ids(tokenizer, turns, add_generation_prompt=False, tools=tools)
    labels = [IGNORE_INDEX] * len(ids)
    for index in range(len(turns)):
        if learned[index]:
            start, end = _turn_span(tokenizer, turns, index, tools)
            labels[start:end] = ids[start:end]
    return Example(ids, labels)


def _turn_span(tokenizer, turns: list[dict], index: int, tools: list[dict] | None) -> tuple[int, int]:
    """Where assistant turn ``index`` lies in the rendered conversation: after the prompt that
    asks for it, up to the end of its own rendering (found by rendering both prefixes)."""
    start = len(_ids(tokenizer, turns[:index], add_generation_prompt=True, tools=tools))
    end = len(_ids(tokenizer, turns[: index + 1], add_generation_prompt=False, tools=tools))
    return start, end


def _ids(tokenizer, turns: list[dict], add_generation_prompt: bool, tools: list[dict] | None = None) -> list[int]:
    return list(tokenizer.apply_chat_template(
        turns, tools=tools, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
    )["input_ids"])


def _plain_example(tokenizer, turns: list[dict], learned: list[bool]) -> Example:
    """Base models without a chat template: prompt text, then the completion and eos (an
    assistant turn not to learn is part of the prompt)."""
    prompt = "\n\n".join(t["content"] for t, learn in zip(turns, learned) if not learn)
    completion = "".join(t["content"] for t, learn in zip(turns, learned) if learn)
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    completion_ids = completion_ids + [tokenizer.eos_token_id]
    return Example(prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids)


def preference_example(tokenizer, prompt: list[dict], answer: dict, tools) -> Example:
    """A preference pair's prompt with one answer (DPO): the answer's tokens, its end of turn
    included, are the targets. With ``tools`` the answer starts where the prompt (with its
    generation prompt) and prompt + answer part, as TRL finds it."""
    if tools is None or not tokenizer.chat_template:
        return chat_example(tokenizer, prompt + [answer])

    def ids(turns: list[dict], generation_prompt: bool) -> list[int]:
        return list(tokenizer.apply_chat_template(turns, tools=tools, tokenize=True, return_dict=True,
                                                  add_generation_prompt=generation_prompt)["input_ids"])

    head, whole = ids(prompt, True), ids(prompt + [answer], False)
    start = next((i for i, (a, b) in enumerate(zip(head, whole)) if a != b), min(len(head), len(whole)))
    return Example(whole, [IGNORE_INDEX] * start + whole[start:])


def prompt_ids(tokenizer, turns: list[dict], tools: list[dict] | None = None) -> list[int]:
    """Token ids of a conversation ready for the model's next (assistant) turn; ``tools`` as
    ``chat_example`` takes them, so a prompt is the prefix of what training rendered."""
    turns = template_turns(turns)
    if not tokenizer.chat_template:
        prompt = "\n\n".join(t["content"] for t in turns if t["role"] != "assistant")
        return tokenizer(prompt, add_special_tokens=True)["input_ids"]
    return _ids(tokenizer, turns, add_generation_prompt=True, tools=tools)


def text_examples(tokenizer, text: str, window: int) -> list[Example]:
    """Unlabeled text, every token a target, cut into windows of at most ``window`` tokens."""
    return texts_examples(tokenizer, [text], window)[0]


def texts_examples(tokenizer, texts: list[str], window: int) -> list[list[Example]]:
    """``text_examples`` of each text, in one tokenizer call (a fast tokenizer encodes a batch in
    parallel, with the same ids as one text at a time): the one place of the windowing rule."""
    examples = []
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids = list(ids)
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        examples.append([Example(ids[i : i + window], ids[i : i + window]) for i in range(0, len(ids), window)])
    return examples
