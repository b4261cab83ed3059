"""The training view: the learned text is exactly the text of the loss-carrying tokens."""

from __future__ import annotations

import pytest

from tailor import tiny
from tailor.catalog import CustomizationType
from tailor.data.preview import training_view
from tailor.data.render import IGNORE_INDEX, chat_example
from tailor.errors import InvalidInput

FT = CustomizationType.FINE_TUNING


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)


def learned(view) -> str:
    return "".join(text for text, is_learned in view.segments if is_learned)


def unlearned(view) -> str:
    return "".join(text for text, is_learned in view.segments if not is_learned)


def test_learned_runs_are_the_label_tokens_and_system_and_user_never_are(tokenizer):
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is Tailor?"},
             {"role": "assistant", "content": "A platform."}]
    view = training_view(tokenizer, {"system": "Be brief.", "messages": turns[1:]}, FT)
    example = chat_example(tokenizer, turns)
    assert learned(view) == tokenizer.decode([t for t, label in zip(example.input_ids, example.labels)
                                              if label != IGNORE_INDEX]) == "A platform.<|end|>"
    assert "Be brief." in unlearned(view) and "What is Tailor?" in unlearned(view)
    assert (view.tokens, view.targets) == (len(example.input_ids), example.target_count)
    assert "".join(text for text, _ in view.segments) == tokenizer.decode(example.input_ids)


def test_a_weight_0_turn_is_context_and_a_system_first_message_is_lifted(tokenizer):
    record = {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Old answer.", "weight": 0},
        {"role": "user", "content": "Again"}, {"role": "assistant", "content": "New answer."}]}
    view = training_view(tokenizer, record, FT)
    assert learned(view) == "New answer.<|end|>"
    assert "Old answer." in unlearned(view) and "Be brief." in unlearned(view)


def test_prompt_completion_cpt_dpo_and_rft(tokenizer):
    pair = training_view(tokenizer, {"prompt": "2+2=", "completion": "4"}, FT)
    assert learned(pair) == "4<|end|>" and "2+2=" in unlearned(pair)

    text = training_view(tokenizer, {"input": "Tailor trains models."}, CustomizationType.CONTINUED_PRE_TRAINING)
    assert unlearned(text) == "" and learned(text).startswith("Tailor trains models.")
    assert text.targets == text.tokens

    preference = {"input": {"messages": [{"role": "user", "content": "Color?"}]},
                  "preferred_output": [{"role": "assistant", "content": "Blue."}],
                  "non_preferred_output": [{"role": "assistant", "content": "Red."}]}
    dpo = training_view(tokenizer, preference, CustomizationType.DPO)
    assert learned(dpo) == "Blue.<|end|>" and "Red." not in "".join(t for t, _ in dpo.segments)

    rft = training_view(tokenizer, {"messages": [{"role": "user", "content": "Color?"}], "reference_answer": "Blue"},
                        CustomizationType.REINFORCEMENT_FINE_TUNING)
    assert rft.targets == 0 and learned(rft) == "" and "Color?" in unlearned(rft)


def test_a_record_of_another_format_says_which_field(tokenizer):
    with pytest.raises(InvalidInput, match="messages"):
        training_view(tokenizer, {"messages": [{"role": "robot", "content": "x"}]}, FT)
