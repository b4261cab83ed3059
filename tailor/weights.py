"""Loading tokenizers and models from where the catalog says their weights are.

The built-in tiny model is built on first use; a local directory is read as it is; a hub id goes
through ``from_pretrained``, and when the hub cannot be reached (offline, unknown id, gated
model) the caller gets a ``ModelUnavailable`` that names the model and says what to do.
torch and transformers are imported inside the functions, so the control plane stays light.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

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


def _from_pretrained(loader, model: ResolvedModel, location: str, **kwargs):
    """``loader.from_pretrained`` with hub failures turned into one clear, fast error.

    A hub model that is not in the local cache is preceded by one 3-second probe of the hub
    endpoint, because huggingface_hub retries an unreachable host for ~50 s before giving up.
    """
    try:
        if model.weights.kind == "hub" and not _in_hub_cache(location):
            _probe_hub()
        return loader.from_pretrained(location, **kwargs)
    except (OSError, ValueError) as error:
        raise _unavailable(model, error) from error


def _in_hub_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _probe_hub() -> None:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false"):
        raise OSError("HF_HUB_OFFLINE is set and the model is not in the local cache")
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=3).close()
    except OSError as error:
        raise OSError(f"cannot reach {endpoint.hostname}:{port} ({error})") from error


def load_tokenizer(model: ResolvedModel, settings: Settings, progress: bool = True):
    from transformers import AutoTokenizer

    if model.weights.kind == "builtin":
        from tailor.tiny import tokenizer_dir

        return AutoTokenizer.from_pretrained(tokenizer_dir(settings.models_dir))
    return _from_pretrained(AutoTokenizer, model, weights_location(model.weights, settings, progress))


def load_causal_lm(model: ResolvedModel, settings: Settings, progress: bool = True, dtype=None):
    """The model on this process's device, in ``dtype``; by default float32 on CPU and bfloat16 on
    a CUDA device, which is what inference wants (training chooses: ``train/precision.py``)."""
    import torch
    from transformers import AutoModelForCausalLM

    location = weights_location(model.weights, settings, progress)
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return _from_pretrained(AutoModelForCausalLM, model, location, dtype=dtype).to(device())


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
