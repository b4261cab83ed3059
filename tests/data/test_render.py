"""Rendering: assistant-only labels, and inference prompts that are exactly the training prefix."""

from __future__ import annotations

import pytest

from tailor import tiny
from tailor.data.render import IGNORE_INDEX, chat_example, prompt_ids, text_examples

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is Tailor?"},
    {"role": "assistant", "content": "A platform."},
    {"role": "user", "content": "Where does it run?"},
    {"role": "assistant", "content": "On your machines."},
]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)


def labelled_text(tokenizer, example) -> str:
    return tokenizer.decode([t for t, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX])


def test_loss_covers_every_assistant_turn_and_its_end_token(tokenizer):
    example = chat_example(tokenizer, CHAT)
    assert labelled_text(tokenizer, example) == "A platform.<|end|>On your machines.<|end|>"
    assert [label for label in example.labels if label != IGNORE_INDEX] == [
        token for token, label in zip(example.input_ids, example.labels) if label != IGNORE_INDEX]


@pytest.mark.parametrize("turns", [2, 4])
def test_inference_prompt_is_the_training_prefix(tokenizer, turns):
    trained = chat_example(tokenizer, CHAT).input_ids
    prompt = prompt_ids(tokenizer, CHAT[:turns])
    assert trained[: len(prompt)] == prompt
    assert trained[len(prompt)] != IGNORE_INDEX
    # The first token after the prompt is the first label: generation continues where training did.
    assert chat_example(tokenizer, CHAT).labels[len(prompt)] == trained[len(prompt)]


def test_templates_without_generation_markers_give_the_same_labels(tokenizer):
    marked = chat_example(tokenizer, CHAT)
    plain = tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)
    plain.chat_template = tiny.CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")
    assert chat_example(plain, CHAT) == marked


def test_base_models_without_a_chat_template(tokenizer):
    base = tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)
    base.chat_template = None
    example = chat_example(base, [{"role": "user", "content": "2+2="}, {"role": "assistant", "content": "4"}])
    assert labelled_text(base, example) == "4<|end|>"
    assert example.input_ids[: len(prompt_ids(base, [{"role": "user", "content": "2+2="}]))] == \
        prompt_ids(base, [{"role": "user", "content": "2+2="}])


def test_text_is_cut_into_windows_with_every_token_a_target(tokenizer):
    examples = text_examples(tokenizer, "word " * 300, window=64)
    assert all(len(e.input_ids) <= 64 for e in examples)
    assert all(e.labels == e.input_ids for e in examples)
    assert examples[-1].input_ids[-1] == tokenizer.eos_token_id
