"""Records -> token ids and loss masks, with the model's own chat template.

Training and inference render through the same functions, so the tokens a deployed model sees
for a prompt are exactly the prefix of the tokens it was trained on (a test checks this).

- Chat records (messages, prompt/completion) are rendered with ``tokenizer.apply_chat_template``.
  The loss covers every assistant turn of a multi-turn record — each turn is a target the user
  wrote, and the earlier turns are context the model must also answer in (documented in
  docs/training.md). Assistant tokens are found with the template's ``{% generation %}`` markers
  when it has them, otherwise by rendering each prefix of the conversation and diffing.
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


def _has_generation_markers(tokenizer) -> bool:
    return "{% generation %}" in (tokenizer.chat_template or "") or "{%- generation" in (
        tokenizer.chat_template or ""
    )


def chat_example(tokenizer, turns: list[dict]) -> Example:
    """Tokenize a chat; labels are the assistant turns' tokens (their end-of-turn included)."""
    if not tokenizer.chat_template:
        return _plain_example(tokenizer, turns)
    if _has_generation_markers(tokenizer):
        encoded = tokenizer.apply_chat_template(
            turns, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids = list(encoded["input_ids"])
        mask = encoded["assistant_masks"]
        labels = [token if keep else IGNORE_INDEX for token, keep in zip(ids, mask)]
        return Example(ids, labels)
    ids = _ids(tokenizer, turns, add_generation_prompt=False)
    labels = [IGNORE_INDEX] * len(ids)
    for index, turn in enumerate(turns):
        if turn["role"] != "assistant":
            continue
        start = len(_ids(tokenizer, turns[:index], add_generation_prompt=True))
        end = len(_ids(tokenizer, turns[: index + 1], add_generation_prompt=False))
        labels[start:end] = ids[start:end]
    return Example(ids, labels)


def _ids(tokenizer, turns: list[dict], add_generation_prompt: bool) -> list[int]:
    return list(tokenizer.apply_chat_template(
        turns, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
    )["input_ids"])


def _plain_example(tokenizer, turns: list[dict]) -> Example:
    """Base models without a chat template: prompt text, then the completion and eos."""
    prompt = "\n\n".join(t["content"] for t in turns if t["role"] != "assistant")
    completion = "".join(t["content"] for t in turns if t["role"] == "assistant")
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    completion_ids = completion_ids + [tokenizer.eos_token_id]
    return Example(prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids)


def prompt_ids(tokenizer, turns: list[dict]) -> list[int]:
    """Token ids of a conversation ready for the model's next (assistant) turn."""
    if not tokenizer.chat_template:
        prompt = "\n\n".join(t["content"] for t in turns if t["role"] != "assistant")
        return tokenizer(prompt, add_special_tokens=True)["input_ids"]
    return _ids(tokenizer, turns, add_generation_prompt=True)


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
