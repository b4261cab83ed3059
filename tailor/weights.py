"""Loading tokenizers and models from where the catalog says their weights are.

The built-in tiny model is built on first use; a local directory is read as it is; a hub id goes
through ``from_pretrained``, and when the hub cannot be reached (offline, unknown id, gated
model) the caller gets a ``ModelUnavailable`` that names the model and says what to do.
torch and transformers are imported inside the functions, so the control plane stays light.
"""

from __future__ import annotations

from pathlib import Path

from tailor.catalog import ResolvedModel, Weights
from tailor.errors import ModelUnavailable
from tailor.settings import Settings


def weights_location(weights: Weights, settings: Settings, progress: bool = True) -> str:
    """A path or hub id ``from_pretrained`` accepts (building the tiny model if needed)."""
    if weights.kind == "builtin":
        from tailor.tiny import tiny_model_dir

        return str(tiny_model_dir(settings.models_dir, progress=progress))
    return weights.location


def _unavailable(model: ResolvedModel, error: Exception) -> ModelUnavailable:
    location = model.weights.location
    if model.weights.kind == "hub":
        advice = (
            f"Could not load {location!r} from the Hugging Face Hub ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no details'}). If this machine is "
            "offline, download the model elsewhere (huggingface-cli download "
            f"{location} --local-dir DIR), copy DIR here and pass --model DIR, or map the id to a "
            "local directory in TAILOR_MODEL_ALIASES."
        )
    else:
        advice = f"Could not load a model from {location}: {error}"
    return ModelUnavailable(f"Model {model.model_id} is unavailable. {advice}")


def load_tokenizer(model: ResolvedModel, settings: Settings, progress: bool = True):
    from transformers import AutoTokenizer

    if model.weights.kind == "builtin":
        from tailor.tiny import tokenizer_dir

        return AutoTokenizer.from_pretrained(tokenizer_dir(settings.models_dir))
    location = weights_location(model.weights, settings, progress)
    try:
        return AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as error:
        raise _unavailable(model, error) from error


def load_causal_lm(model: ResolvedModel, settings: Settings, progress: bool = True):
    """The model in float32 on CPU, or bfloat16 on a CUDA device when one is present."""
    import torch
    from transformers import AutoModelForCausalLM

    location = weights_location(model.weights, settings, progress)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        loaded = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    except (OSError, ValueError) as error:
        raise _unavailable(model, error) from error
    return loaded.to(device())


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def is_local_folder(location: str) -> bool:
    return Path(location).is_dir()
