"""A custom model written out as a plain Hugging Face folder: what ``from_pretrained`` loads with no
Tailor and no peft.

A full fine-tune is its weights as trained; a LoRA adapter is merged into its base's weights
(peft's ``merge_and_unload``: W + scale * B @ A, the same sum serving's adapter forward adds
at every step), so the folder holds one ordinary model. Beside the weights (safetensors, in the
dtype the base was stored in) go config.json, generation_config.json (with the stop tokens serving
uses: ``weights.load_causal_lm`` adds a hub family's) and the tokenizer serving renders prompts
with, chat template included.

The model is loaded and merged in float32 on the CPU whatever the machine: an export is an
operator's copy, not a latency path, and float32 keeps the merge's sum exact before the one cast
to the stored dtype. torch, transformers and peft are imported inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tailor.catalog import resolve_model
from tailor.errors import InvalidInput
from tailor.settings import Settings
from tailor.trained import building
from tailor.weights import load_causal_lm, load_config, load_tokenizer

Progress = Callable[[str], None]
WEIGHTS_SUFFIX = ".safetensors"
REQUIRED = ("config.json", "generation_config.json", "tokenizer_config.json")


@dataclass(frozen=True)
class Source:
    """What to export: the base weights (anything ``catalog.resolve_model`` resolves: a catalog id,
    alias, or a model folder) and, for a LoRA custom model, the adapter folder that goes on it."""

    base: str
    adapter: str | None = None
    name: str = "model"  # what the files are called for a person (the custom model's name)


@dataclass
class Exported:
    """What an export wrote and what was checked: ``files`` maps each file (relative) to its bytes."""

    path: Path
    format: str
    files: dict[str, int] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())

    def summary(self) -> dict:
        return {"format": self.format, "path": str(self.path), "files": dict(self.files),
                "size_bytes": self.size_bytes, "checks": list(self.checks)}


def merged_model(source: Source, settings: Settings, progress: Progress = lambda note: None):
    """``(model, tokenizer, stored_dtype)``: the custom model as one transformers model in float32
    on the CPU (an adapter merged in), the tokenizer serving uses, and the dtype to save in."""
    import torch

    resolved = resolve_model(source.base, settings)
    stored = _stored_dtype(load_config(resolved, settings))
    progress("loading the weights")
    model = load_causal_lm(resolved, settings, progress=False, dtype=torch.float32, on=torch.device("cpu"))
    if source.adapter is not None:
        from peft import PeftModel

        progress("merging the LoRA adapter into the base weights")
        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
    model.eval()
    # The engine renders every request with the base's tokenizer (hub families' rules applied).
    tokenizer = load_tokenizer(resolved, settings, progress=False)
    return model, tokenizer, stored


def _stored_dtype(config):
    """The dtype the base's weights are stored in (float32 when the config does not say)."""
    import torch

    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) and value.is_floating_point else torch.float32


def export_hf(source: Source, out_dir: Path, settings: Settings, progress: Progress = lambda note: None) -> Exported:
    """Write ``source`` as a Hugging Face folder at ``out_dir`` (absent or empty; written whole or
    not at all) and check it reads back."""
    model, tokenizer, stored = merged_model(source, settings, progress)
    out_dir = Path(out_dir)
    with building(out_dir) as scratch:
        write_folder(model, tokenizer, stored, scratch, progress)
    exported = Exported(out_dir.resolve(), "hf", folder_files(out_dir))
    progress("checking the folder loads")
    exported.checks += check_folder(out_dir, model)
    return exported


def write_folder(model, tokenizer, stored, folder: Path, progress: Progress = lambda note: None) -> None:
    """Save the merged ``model`` (cast to ``stored``) and ``tokenizer`` into ``folder``."""
    progress(f"writing safetensors ({str(stored).removeprefix('torch.')})")
    model.to(stored).save_pretrained(folder, safe_serialization=True, max_shard_size="5GB")
    tokenizer.save_pretrained(folder)
    # transformers writes the chat template as chat_template.jinja; a tokenizer without one (a base
    # model's) simply has none to write.
    for name in REQUIRED:
        if not (folder / name).is_file():
            raise InvalidInput(f"The export wrote no {name}; the model cannot be loaded from it.")


def folder_files(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_size
            for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def check_folder(folder: Path, model) -> list[str]:
    """What the written folder must be for plain transformers: its safetensors hold exactly the
    merged model's tensors (names, shapes; no adapter left), and its config and tokenizer load.
    ``InvalidInput`` says what is wrong; otherwise the checks that passed, in words."""
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        expected.pop("lm_head.weight", None)  # saved once, as the embedding
    written: dict[str, tuple] = {}
    for path in sorted(Path(folder).glob("*" + WEIGHTS_SUFFIX)):
        with safe_open(str(path), framework="pt") as file:
            for name in file.keys():  # noqa: SIM118 (safe_open is not a mapping)
                written[name] = tuple(file.get_slice(name).get_shape())
    leftover = sorted(name for name in written if "lora_" in name or "base_layer" in name)
    if leftover:
        raise InvalidInput(f"The exported weights still hold adapter tensors: {', '.join(leftover[:3])}.")
    if written != expected:
        missing = sorted(set(expected) - set(written))
        extra = sorted(set(written) - set(expected))
        raise InvalidInput(f"The exported weights differ from the model: missing {missing[:3]}, unexpected "
                           f"{extra[:3]}, or shapes differ.")
    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    checks = [f"{len(written)} tensors in safetensors, names and shapes equal to the merged model's",
              f"config.json loads ({config.model_type}, {' '.join(config.architectures or [])})",
              f"tokenizer loads ({len(tokenizer)} tokens"
              + (", chat template included)" if tokenizer.chat_template else ", no chat template)")]
    generation = json.loads((Path(folder) / "generation_config.json").read_text())
    checks.append(f"generation_config.json stops on {generation.get('eos_token_id')}")
    return checks
