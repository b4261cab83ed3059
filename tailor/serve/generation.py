"""Answer conversations without the serving engine: ``tailor generate``, the quickstart, the RFT
demo's accuracy, and reinforcement fine-tuning's held-out checks on the model it is training.

Prompts are rendered by ``tailor.data.render.prompt_ids``, the same code that rendered the training
data and that the engine renders with, and decoded by ``tailor.serve.decoding``, the engine's own
forward passes and token choice, in one static batch (see there why these callers do not go
through the engine).

A model reference is anything the catalog resolves: a foundation id, an alias, a local directory,
a hub id, or a trained folder (``tailor.trained``: full weights, or a LoRA adapter on the base its
manifest recorded), loaded the way training loads a model it continues from.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailor.catalog import resolve_model
from tailor.data.render import prompt_ids
from tailor.errors import InvalidInput
from tailor.serve.decoding import complete
from tailor.serve.protocol import Sampling, Target
from tailor.settings import Settings
from tailor.weights import load_causal_lm, load_tokenizer


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    description: str


def load_for_inference(reference: str, settings: Settings, progress: bool = True) -> LoadedModel:
    model_ref = resolve_model(reference, settings)
    model = load_causal_lm(model_ref, settings, progress=progress)
    if model_ref.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, model_ref.adapter)
    model.eval()
    description = model_ref.describe() + (f" with the LoRA adapter {model_ref.adapter}" if model_ref.adapter else "")
    return LoadedModel(model, load_tokenizer(model_ref, settings, progress), description)


def chat(loaded: LoadedModel, questions: list[str], *, system: str | None = None,
         max_new_tokens: int = 128, temperature: float = 0.0, batch_size: int = 32) -> list[str]:
    """Answer each question as a single-turn conversation; greedy unless temperature > 0."""
    system_turn = [{"role": "system", "content": system}] if system else []
    conversations = [system_turn + [{"role": "user", "content": q}] for q in questions]
    return generate(loaded, conversations, max_new_tokens=max_new_tokens, temperature=temperature,
                    batch_size=batch_size)


def generate(loaded: LoadedModel, conversations: list[list[dict]], *, max_new_tokens: int = 128,
             temperature: float = 0.0, batch_size: int = 32) -> list[str]:
    """Each conversation's next assistant turn, stripped of surrounding whitespace."""
    if max_new_tokens < 1:
        raise InvalidInput("max_new_tokens must be at least 1.")
    sampling = Sampling(max_tokens=max_new_tokens, temperature=temperature)
    return [text.strip() for text in answer(loaded.model, loaded.tokenizer, conversations, sampling, batch_size)]


def answer(model, tokenizer, conversations: list[list[dict]], sampling: Sampling, batch_size: int = 32) -> list[str]:
    """Each conversation's next assistant turn, as decoded, ``batch_size`` conversations at a time.

    ``model`` may be one in training: the caller puts it in eval mode and back."""
    answers: list[str] = []
    for start in range(0, len(conversations), batch_size):
        prompts = [prompt_ids(tokenizer, turns) for turns in conversations[start : start + batch_size]]
        answers += complete(model, tokenizer, prompts, sampling)
    return answers


def load_target(target: Target, settings: Settings) -> LoadedModel:
    """A ``serve.protocol.Target`` loaded in this process: its base, with its LoRA adapter on top
    when it has one (the tokenizer saved beside the adapter is the one training used)."""
    base = load_for_inference(target.base, settings)
    if target.adapter is None:
        return base
    from peft import PeftModel
    from transformers import AutoTokenizer

    model = PeftModel.from_pretrained(base.model, target.adapter)
    model.eval()
    return LoadedModel(model, AutoTokenizer.from_pretrained(target.adapter),
                       f"{target.adapter} (LoRA adapter on {base.description})")
