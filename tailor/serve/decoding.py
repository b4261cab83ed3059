"""Token by token: the forward passes and the choice of each next token, shared by everything in
Tailor that generates text.

The serving engine (``serve/engine.py``, which serving and evaluation use) runs these under
continuous batching: requests join and leave a running batch between two steps. Callers with a
fixed set of prompts run them as one static batch with ``complete``: ``tailor generate`` and
``rft_demo``'s accuracy (through ``serve/generation.py``), and reinforcement fine-tuning's
held-out checks on the model it is training.

Why the held-out checks do not go through the engine itself: the engine owns its models (it loads
them by reference in its loader thread, keeps them least-recently-used, puts LoRA adapters on and
off between steps) and decodes in its own scheduler thread. A model in the middle of training is
owned by the optimizer, changes between two checks, and must be decoded in the trainer's thread
while training waits. What decides the tokens is shared instead: prompts rendered by
``tailor.data.render.prompt_ids``, these forward passes over a KV cache, and this token choice.
So a greedy answer is the same token for token whether the engine, ``tailor generate`` or a
held-out check produced it (``tests/serve/test_engine.py`` compares the engine with ``complete``).
"""

from __future__ import annotations

from tailor.serve.protocol import Sampling


def pad_id(tokenizer) -> int:
    """The id padding positions hold; they are masked out, so any id does."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def stop_ids(model, tokenizer) -> set[int]:
    """Tokens that end the model's turn: the generation config's eos ids and the tokenizer's."""
    ids = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def device_of(model):
    return next(model.parameters()).device


def prefill(model, prompts: list[list[int]], pad: int, **forward):
    """Run the prompts, left-padded to a common length (every prompt's last token at the end, where
    decoding continues): ``(last logits [rows, vocab], cache, attention mask)``. ``forward`` goes
    to the model (the engine's per-row LoRA ``adapter_names``)."""
    import torch
    from transformers import DynamicCache

    device = device_of(model)
    width = max(len(prompt) for prompt in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # ``cache`` (transformers >= 5.24; ``past_key_values`` is deprecated, to go in 5.40).
    output = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=DynamicCache(),
                   use_cache=True, logits_to_keep=1, **forward)
    return output.logits[:, -1, :], output.cache, mask


def step(model, tokens, mask, cache, **forward):
    """Feed each row its next token: ``(last logits, cache, attention mask)``, one position longer."""
    import torch

    mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
    positions = mask.sum(-1, keepdim=True) - 1
    output = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions, cache=cache,
                   use_cache=True, **forward)
    return output.logits[:, -1, :], output.cache, mask


def generator_for(sampling: Sampling, device):
    """The random generator a sampled row draws from (seeded when asked); None when greedy."""
    import torch

    if sampling.temperature <= 0:
        return None
    generator = torch.Generator(device=device)
    if sampling.seed is not None:
        generator.manual_seed(sampling.seed)
    else:
        generator.seed()
    return generator


def choose(logits, samplings: list[Sampling], generators: list):
    """One next token per row, each with its own sampling parameters (greedy, temperature, top-k,
    top-p) and its own generator."""
    import torch

    chosen = logits.argmax(dim=-1)
    for index, sampling in enumerate(samplings):
        if sampling.temperature <= 0:
            continue
        scores = logits[index].float() / sampling.temperature
        if sampling.top_k > 0:
            kth = torch.topk(scores, min(sampling.top_k, scores.numel())).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if sampling.top_p < 1.0:
            ordered, order = torch.sort(scores, descending=True)
            cumulative = torch.softmax(ordered, dim=-1).cumsum(-1)
            drop = cumulative - torch.softmax(ordered, dim=-1) >= sampling.top_p  # keep the first over p
            scores = scores.scatter(0, order, ordered.masked_fill(drop, float("-inf")))
        probabilities = torch.softmax(scores, dim=-1)
        chosen[index] = torch.multinomial(probabilities, 1, generator=generators[index])[0]
    return chosen


def complete(model, tokenizer, prompts: list[list[int]], sampling: Sampling) -> list[str]:
    """The answer to each prompt (token ids), decoded together as one static batch until every row
    has met a stop token or ``sampling.max_tokens``. Stop sequences are the engine's business (it
    streams); here only the model's own end of turn stops a row."""
    import torch

    stops = stop_ids(model, tokenizer)
    device = device_of(model)
    generators = [generator_for(sampling, device) for _ in prompts]
    generated: list[list[int]] = [[] for _ in prompts]
    done = [False] * len(prompts)
    with torch.no_grad():
        logits, cache, mask = prefill(model, prompts, pad_id(tokenizer))
        while True:
            tokens = choose(logits, [sampling] * len(prompts), generators)
            for row, token in enumerate(tokens.tolist()):
                if done[row]:
                    continue  # a finished row rides along until the batch ends; its tokens are dropped
                if token in stops:
                    done[row] = True
                else:
                    generated[row].append(token)
                    done[row] = len(generated[row]) >= sampling.max_tokens
            if all(done):
                break
            logits, cache, mask = step(model, tokens, mask, cache)
    return [tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]
