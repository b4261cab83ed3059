"""The popular open models, by Hugging Face hub id: the table the catalog reads (``tailor.catalog``).

Each row says what Tailor needs to use a checkpoint correctly when its weights are on this machine
(in a folder the operator names, or in the Hugging Face cache; ``catalog.resolve_model`` looks):

- ``architecture``: a key of ``tailor.architectures.ARCHITECTURES``, which holds the family's chat
  rules once for every model of it: its chat template (used when the folder's tokenizer has none,
  as base checkpoints do), the end-of-turn token generation stops on, whether the format has a
  system role (Gemma has none: a system message is folded into the first user turn) and the
  config ``model_type`` a folder of that family must declare.
- ``context_length``: the context the model was trained for, as its publisher documents it; it
  caps the tokenizer's ``model_max_length``, which training and validation read.
- ``parameters_b``: the parameter count in billions, approximate (for notes and estimates).
- ``lora_target_modules``: only where LoRA should *not* wrap every linear layer: Gemma 3 from 4B on
  is an image-text model, whose vision tower stays untouched.

Data only: no code path differs per model. Nothing from Tailor is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_TYPES = ("FINE_TUNING", "CONTINUED_PRE_TRAINING", "REINFORCEMENT_FINE_TUNING", "DPO")

# Gemma 3 4B+ (Gemma3ForConditionalGeneration): the language model's linear layers, not the
# SigLIP vision tower's (a regex over module names, as peft takes it).
GEMMA3_LANGUAGE_MODEL = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class HubModel:
    hub_id: str  # as the hub spells it, e.g. "Qwen/Qwen2.5-0.5B-Instruct"
    architecture: str  # key of tailor.architectures.ARCHITECTURES
    context_length: int  # tokens
    parameters_b: float  # billions, approximate
    instruct: bool  # post-trained for chat (else a base checkpoint)
    lora_target_modules: str | tuple[str, ...] | None = None  # None: every linear layer of the blocks
    customization_types: tuple[str, ...] = ALL_TYPES  # values of catalog.CustomizationType
    image_input: bool = False  # also takes images (Tailor trains and serves its text side)

    @property
    def provider(self) -> str:
        return self.hub_id.split("/", 1)[0]


def _row(hub_id: str, architecture: str, context_length: int, parameters_b: float, instruct: bool, **kw) -> HubModel:
    return HubModel(hub_id, architecture, context_length, parameters_b, instruct, **kw)


_K = 1024
HUB_MODELS: tuple[HubModel, ...] = (
    # Meta Llama 3.1 / 3.2 / 3.3 (gated on the hub: download with an accepted licence).
    _row("meta-llama/Llama-3.2-1B", "llama3", 128 * _K, 1.24, False),
    _row("meta-llama/Llama-3.2-1B-Instruct", "llama3", 128 * _K, 1.24, True),
    _row("meta-llama/Llama-3.2-3B", "llama3", 128 * _K, 3.21, False),
    _row("meta-llama/Llama-3.2-3B-Instruct", "llama3", 128 * _K, 3.21, True),
    _row("meta-llama/Llama-3.1-8B", "llama3", 128 * _K, 8.03, False),
    _row("meta-llama/Llama-3.1-8B-Instruct", "llama3", 128 * _K, 8.03, True),
    _row("meta-llama/Llama-3.1-70B", "llama3", 128 * _K, 70.6, False),
    _row("meta-llama/Llama-3.1-70B-Instruct", "llama3", 128 * _K, 70.6, True),
    _row("meta-llama/Llama-3.3-70B-Instruct", "llama3", 128 * _K, 70.6, True),
    # Qwen 2.5: 32K native context (longer only with YaRN rope scaling, which Tailor does not set).
    _row("Qwen/Qwen2.5-0.5B", "qwen2.5", 32 * _K, 0.49, False),
    _row("Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5", 32 * _K, 0.49, True),
    _row("Qwen/Qwen2.5-1.5B", "qwen2.5", 32 * _K, 1.54, False),
    _row("Qwen/Qwen2.5-1.5B-Instruct", "qwen2.5", 32 * _K, 1.54, True),
    _row("Qwen/Qwen2.5-3B", "qwen2.5", 32 * _K, 3.09, False),
    _row("Qwen/Qwen2.5-3B-Instruct", "qwen2.5", 32 * _K, 3.09, True),
    _row("Qwen/Qwen2.5-7B", "qwen2.5", 32 * _K, 7.62, False),
    _row("Qwen/Qwen2.5-7B-Instruct", "qwen2.5", 32 * _K, 7.62, True),
    _row("Qwen/Qwen2.5-14B-Instruct", "qwen2.5", 32 * _K, 14.7, True),
    _row("Qwen/Qwen2.5-32B-Instruct", "qwen2.5", 32 * _K, 32.5, True),
    _row("Qwen/Qwen2.5-72B-Instruct", "qwen2.5", 32 * _K, 72.7, True),
    # Qwen3 (post-trained, thinking and non-thinking in one model; 32K native context).
    _row("Qwen/Qwen3-0.6B", "qwen3", 32 * _K, 0.6, True),
    _row("Qwen/Qwen3-1.7B", "qwen3", 32 * _K, 1.7, True),
    _row("Qwen/Qwen3-4B", "qwen3", 32 * _K, 4.0, True),
    _row("Qwen/Qwen3-8B", "qwen3", 32 * _K, 8.2, True),
    _row("Qwen/Qwen3-14B", "qwen3", 32 * _K, 14.8, True),
    _row("Qwen/Qwen3-32B", "qwen3", 32 * _K, 32.8, True),
    # Mistral
    _row("mistralai/Mistral-7B-v0.3", "mistral", 32 * _K, 7.25, False),
    _row("mistralai/Mistral-7B-Instruct-v0.3", "mistral", 32 * _K, 7.25, True),
    # Google Gemma 2 and 3 (gated on the hub). Gemma 3 from 4B on reads images too.
    _row("google/gemma-2-2b", "gemma2", 8 * _K, 2.61, False),
    _row("google/gemma-2-2b-it", "gemma2", 8 * _K, 2.61, True),
    _row("google/gemma-2-9b", "gemma2", 8 * _K, 9.24, False),
    _row("google/gemma-2-9b-it", "gemma2", 8 * _K, 9.24, True),
    _row("google/gemma-2-27b-it", "gemma2", 8 * _K, 27.2, True),
    _row("google/gemma-3-1b-pt", "gemma3", 32 * _K, 1.0, False),
    _row("google/gemma-3-1b-it", "gemma3", 32 * _K, 1.0, True),
    _row("google/gemma-3-4b-it", "gemma3", 128 * _K, 4.3, True, lora_target_modules=GEMMA3_LANGUAGE_MODEL,
         image_input=True),
    _row("google/gemma-3-12b-it", "gemma3", 128 * _K, 12.2, True, lora_target_modules=GEMMA3_LANGUAGE_MODEL,
         image_input=True),
    _row("google/gemma-3-27b-it", "gemma3", 128 * _K, 27.4, True, lora_target_modules=GEMMA3_LANGUAGE_MODEL,
         image_input=True),
    # Microsoft Phi
    _row("microsoft/Phi-3-mini-4k-instruct", "phi3", 4 * _K, 3.82, True),
    _row("microsoft/Phi-3-mini-128k-instruct", "phi3", 128 * _K, 3.82, True),
    _row("microsoft/Phi-3.5-mini-instruct", "phi3", 128 * _K, 3.82, True),
    _row("microsoft/phi-4", "phi4", 16 * _K, 14.7, True),
)

_BY_LOWER_ID: dict[str, HubModel] = {model.hub_id.lower(): model for model in HUB_MODELS}


def find(hub_id: str) -> HubModel | None:
    """The table's row for ``hub_id`` (case-insensitive, as the hub's own lookup), or None."""
    return _BY_LOWER_ID.get(hub_id.strip().lower())
