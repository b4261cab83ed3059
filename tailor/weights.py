"""Loading tokenizers and models from where the catalog says their weights are.

The built-in tiny model is built on first use; a local directory is read as it is; a hub id goes
through ``from_pretrained``, and when the hub cannot be reached (offline, unknown id, gated
model) the caller gets a ``ModelUnavailable`` that names the model and says what to do.

A model of the hub table (``ResolvedModel.hub_model``; ``tailor.hub_models``) is loaded with its
family's rules (``tailor.architectures``): the family's chat template when the folder's tokenizer
has none (a base checkpoint), the family's stop tokens added to the generation config (a base
checkpoint stops only on its end of text), and the tokenizer's ``model_max_length`` capped at the
table's context length (training, validation and the RFT prompt bound read it).
torch and transformers are imported inside the functions, so the control plane stays light.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from tailor.architectures import ARCHITECTURES
from tailor.catalog import ResolvedModel, Weights
from tailor.errors import InvalidInput, ModelUnavailable
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
    tokenizer = _from_pretrained(AutoTokenizer, model, weights_location(model.weights, settings, progress))
    if model.hub_model is not None:
        apply_family_rules(tokenizer, model)
    return tokenizer


def _family_token_ids(tokenizer, tokens: tuple[str, ...]) -> list[int]:
    """The ids of ``tokens`` that are single tokens of ``tokenizer``'s vocabulary."""
    vocabulary = tokenizer.get_vocab()
    return [vocabulary[token] for token in tokens if token in vocabulary]


def apply_family_rules(tokenizer, model: ResolvedModel) -> None:
    """Give a hub-table model's tokenizer its family's chat template (when it has none) and cap
    its ``model_max_length`` at the table's context length."""
    hub = model.hub_model
    architecture = ARCHITECTURES[hub.architecture]
    if not tokenizer.chat_template:
        if not _family_token_ids(tokenizer, (architecture.end_of_turn,)):
            raise InvalidInput(
                f"The tokenizer in {model.weights.location} has no chat template and no "
                f"{architecture.end_of_turn!r} token, so the {hub.architecture} chat format of {hub.hub_id} "
                "cannot apply: is this folder really that model?")
        tokenizer.chat_template = architecture.chat_template
    current = tokenizer.model_max_length
    if not isinstance(current, int) or current <= 0 or current > hub.context_length:
        tokenizer.model_max_length = hub.context_length


def _add_family_stops(loaded, model: ResolvedModel, location: str) -> None:
    """Make generation stop on the family's stop tokens (a base checkpoint's generation config
    names only its end of text; the family's chat template ends each answer otherwise)."""
    from transformers import AutoTokenizer

    architecture = ARCHITECTURES[model.hub_model.architecture]
    tokenizer = AutoTokenizer.from_pretrained(location)
    wanted = _family_token_ids(tokenizer, architecture.stop_tokens)
    config = loaded.generation_config
    configured = config.eos_token_id
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    missing = [token for token in wanted if token not in ids]
    if missing:
        ids += missing
        config.eos_token_id = ids if len(ids) > 1 else ids[0]


def load_config(model: ResolvedModel, settings: Settings):
    """The model's transformers config, without its weights (the base's, for a LoRA custom model)."""
    from transformers import AutoConfig

    return _from_pretrained(AutoConfig, model, weights_location(model.weights, settings, progress=False))


def load_causal_lm(model: ResolvedModel, settings: Settings, progress: bool = True, dtype=None, on=None):
    """The model on this process's device (or ``on``), in ``dtype``; by default float32 on CPU and
    bfloat16 on a CUDA device, which is what inference wants (training chooses:
    ``train/precision.py``), with ``attention_options``."""
    import torch
    from transformers import AutoModelForCausalLM

    location = weights_location(model.weights, settings, progress)
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    loaded = _from_pretrained(AutoModelForCausalLM, model, location, dtype=dtype, **attention_options())
    if model.hub_model is not None:
        _add_family_stops(loaded, model, location)
    return loaded.to(on or device())


def attention_options() -> dict:
    """How models load their attention: FlashAttention on a CUDA machine that has it installed
    (padding-free training batches need its variable-length kernels: ``train/loop.packs``),
    transformers' default (SDPA) otherwise."""
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return {"attn_implementation": "flash_attention_2"}
    return {}


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
