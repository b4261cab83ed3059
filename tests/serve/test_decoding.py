"""The decoding every generator shares (the engine, ``tailor generate``, RFT's held-out checks),
held against transformers' own ``generate`` on the tiny model."""

from __future__ import annotations

import pytest

from tailor.serve.decoding import complete
from tailor.serve.protocol import Sampling

pytestmark = pytest.mark.slow

CONVERSATIONS = [
    [{"role": "user", "content": "What is Tailor?"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "def f(x): return x"}],
    [{"role": "user", "content": "A much longer question, so that the prompts of one batch differ in length "
                                 "and the shorter ones are padded on the left."}],
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_models_dir):
    from tailor.serve.generation import load_for_inference
    from tailor.settings import Settings
    from tests.conftest import tiny_home

    home = tiny_home(tmp_path_factory.mktemp("decoding") / "home", tiny_models_dir)
    return load_for_inference("tailor.tiny", Settings(home=home), progress=False)


def test_greedy_decoding_matches_transformers_generate_token_for_token(tiny):
    import torch

    from tailor.data.render import prompt_ids

    prompts = [prompt_ids(tiny.tokenizer, turns) for turns in CONVERSATIONS]
    ours = complete(tiny.model, tiny.tokenizer, prompts, Sampling(max_tokens=24))
    for prompt, answer in zip(prompts, ours):  # one at a time: no padding in the reference
        with torch.no_grad():
            output = tiny.model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False,
                                         pad_token_id=tiny.tokenizer.pad_token_id)
        assert answer == tiny.tokenizer.decode(output[0, len(prompt):], skip_special_tokens=True)


def test_sampling_follows_its_seed_and_rows_stop_at_the_token_limit(tiny):
    from tailor.data.render import prompt_ids

    prompts = [prompt_ids(tiny.tokenizer, turns) for turns in CONVERSATIONS]
    sampled = Sampling(max_tokens=8, temperature=1.0, seed=3)
    assert complete(tiny.model, tiny.tokenizer, prompts, sampled) == complete(tiny.model, tiny.tokenizer, prompts,
                                                                               sampled)
    short = complete(tiny.model, tiny.tokenizer, prompts, Sampling(max_tokens=3))
    long = complete(tiny.model, tiny.tokenizer, prompts, Sampling(max_tokens=24))
    assert all(whole.startswith(start) for start, whole in zip(short, long))
    assert sum(len(whole) > len(start) for start, whole in zip(short, long)) >= 1


def test_decoding_uses_the_cache_argument_not_the_deprecated_past_key_values(tiny):
    """transformers >= 5.24 renamed the forward's ``past_key_values`` to ``cache`` and will drop the old
    name (5.40): prefill and step must pass and read the new one, or serving breaks on that upgrade."""
    import warnings

    from tailor.data.render import prompt_ids

    prompts = [prompt_ids(tiny.tokenizer, turns) for turns in CONVERSATIONS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        complete(tiny.model, tiny.tokenizer, prompts, Sampling(max_tokens=8))
    assert not [str(w.message) for w in caught if "past_key_values" in str(w.message)]
