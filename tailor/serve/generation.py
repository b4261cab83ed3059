"""Load a model for inference and answer conversations with it, in batches.

A *model reference* is either a training output folder (it has a ``manifest.json``: full weights
in ``model/``, or a LoRA adapter there plus the base model the manifest names) or anything the
catalog resolves (a foundation id, an alias, a local directory, a hub id). Prompts are rendered by
``tailor.data.render.prompt_ids``, the same code that rendered the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tailor.catalog import TINY_MODEL_ID, resolve_model
from tailor.data.render import prompt_ids
from tailor.errors import InvalidInput
from tailor.settings import Settings
from tailor.weights import device, load_causal_lm, load_tokenizer


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    description: str


def load_for_inference(reference: str, settings: Settings, progress: bool = True) -> LoadedModel:
    folder = Path(reference).expanduser()
    if (folder / "manifest.json").is_file():
        return _load_trained(folder, settings, progress)
    model_ref = resolve_model(reference, settings)
    model = load_causal_lm(model_ref, settings, progress=progress)
    model.eval()
    return LoadedModel(model, load_tokenizer(model_ref, settings, progress), model_ref.describe())


def _load_trained(folder: Path, settings: Settings, progress: bool) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = json.loads((folder / "manifest.json").read_text())
    model_dir = folder / manifest.get("model_path", "model")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if manifest["tuning_method"] == "lora":
        from peft import PeftModel

        # The base is found again from the weights the manifest recorded (not from an alias,
        # which may have changed since): the built-in model is rebuilt if its cache was cleared.
        weights = manifest["base_model"]["weights"]
        base_ref = resolve_model(TINY_MODEL_ID if weights["kind"] == "builtin" else weights["location"], settings)
        model = PeftModel.from_pretrained(load_causal_lm(base_ref, settings, progress), model_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir).to(device())
    model.eval()
    base_name = manifest["base_model"]["model_id"]
    return LoadedModel(model, tokenizer, f"{folder} ({manifest['tuning_method']} fine-tune of {base_name})")


def chat(loaded: LoadedModel, questions: list[str], *, system: str | None = None,
         max_new_tokens: int = 128, temperature: float = 0.0, batch_size: int = 32) -> list[str]:
    """Answer each question as a single-turn conversation; greedy unless temperature > 0."""
    system_turn = [{"role": "system", "content": system}] if system else []
    conversations = [system_turn + [{"role": "user", "content": q}] for q in questions]
    return generate(loaded, conversations, max_new_tokens=max_new_tokens, temperature=temperature,
                    batch_size=batch_size)


def generate(loaded: LoadedModel, conversations: list[list[dict]], *, max_new_tokens: int = 128,
             temperature: float = 0.0, batch_size: int = 32) -> list[str]:
    import torch

    if max_new_tokens < 1:
        raise InvalidInput("max_new_tokens must be at least 1.")
    tokenizer, model = loaded.tokenizer, loaded.model
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    for start in range(0, len(conversations), batch_size):
        prompts = [prompt_ids(tokenizer, turns) for turns in conversations[start : start + batch_size]]
        width = max(len(p) for p in prompts)
        # Left padding keeps every prompt's last token at the end, where generation continues.
        input_ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in prompts], device=device())
        attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device())
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with torch.no_grad():
            output = model.generate(input_ids=input_ids, attention_mask=attention, max_new_tokens=max_new_tokens,
                                    pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id, **sampling)
        for row in output[:, width:]:
            answers.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return answers
