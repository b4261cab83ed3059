"""Foundation models Tailor can customize, the families they belong to, and where weights come from.

A *family* decides what a model accepts: its data formats and limits, its hyperparameter names
(``tailor.train.hyperparams``) and, later, its request bodies. A *foundation model* is an entry
with a Bedrock-style id. Some entries carry weights Tailor can load (the built-in ``tailor.tiny``);
the original service's ids carry none and work only through an alias, configured in
``TAILOR_MODEL_ALIASES``, that points them at a local model. An alias keeps the family of the id
it stands for, so a script written for Claude 3 Haiku keeps Haiku's data rules and hyperparameter
names while the weights come from elsewhere. Tailor never maps an id silently: the resolution is
returned with a note that callers print and record.

Besides catalog ids, a model can be named by a local directory (a Hugging Face model folder) or a
hub id (``org/name``); those use the ``tailor`` family. The popular open models' hub ids are in a
table (``tailor.hub_models``: architecture, context length, size); one of those is never fetched
from the hub: its weights are looked up on this machine (``_resolve_hub``: an alias to a folder,
``TAILOR_HOME/models/ORG/NAME``, then the Hugging Face cache), a folder of another architecture is
refused, and its family's chat rules (``tailor.architectures``) apply when it is loaded
(``tailor.weights``). A Tailor training output folder (one with a
``manifest.json``: a custom model) resolves to the model it was trained from, started from its
trained weights: that is how a custom model is customized again (iterative customization, e.g.
reinforcement fine-tuning after supervised fine-tuning).

A family's data limits may differ per customization type (``Family.limits_for``): reinforcement
fine-tuning takes prompts, not examples, and the original service bounds them differently.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Literal

from tailor import hub_models, trained
from tailor.architectures import ARCHITECTURES
from tailor.errors import InvalidInput, ModelUnavailable, NotFound
from tailor.hub_models import HubModel
from tailor.settings import Settings
from tailor.trained import TrainedModel


class CustomizationType(StrEnum):
    FINE_TUNING = "FINE_TUNING"
    CONTINUED_PRE_TRAINING = "CONTINUED_PRE_TRAINING"
    DISTILLATION = "DISTILLATION"
    REINFORCEMENT_FINE_TUNING = "REINFORCEMENT_FINE_TUNING"
    IMPORTED = "IMPORTED"
    # Tailor's own, not in Bedrock's enum: OpenAI's fine-tuning ``method.type = "dpo"`` (and
    # ``tailor train --type DPO``). The Bedrock API refuses it; its views never show it.
    DPO = "DPO"


class DataFormat(StrEnum):
    """The record layouts of training data (``tailor.data.formats``; docs/data.md shows each)."""

    MESSAGES = "messages"  # {"system"?, "messages": [{"role", "content"}]} (Claude 3 Haiku)
    PROMPT_COMPLETION = "prompt_completion"  # {"prompt", "completion"}
    TEXT = "text"  # {"input"}: unlabeled text for continued pre-training
    RFT_CHAT = "rft_chat"  # {"messages": [system/user/assistant], "reference_answer", ...}: RFT prompts
    PREFERENCE = "preference"  # {"input": {"messages"}, "preferred_output", "non_preferred_output"}: DPO


GB = 1_000_000_000
MB = 1_000_000


@dataclass(frozen=True)
class DataLimits:
    """Bounds a dataset must respect; ``None`` means unbounded."""

    train_records: tuple[int, int | None] = (1, None)
    validation_records: tuple[int, int | None] = (1, None)
    total_records_max: int | None = None
    record_tokens_max: int | None = None
    train_bytes_max: int | None = None
    validation_bytes_max: int | None = None
    # RFT prompts only: a prompt is an optional system message and one user message (Nova).
    single_turn: bool = False


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    formats: dict[CustomizationType, tuple[DataFormat, ...]]
    limits: DataLimits
    # The InvokeModel body its models take (tailor.wire.invoke): the family's native
    # body, as in the original; Tailor's own family takes OpenAI chat-completions bodies.
    invoke_body: Literal["openai", "anthropic", "cohere", "llama", "titan"] = "openai"
    # Limits for one customization type that differ from ``limits`` (RFT counts prompts).
    limits_by_type: dict[CustomizationType, DataLimits] = field(default_factory=dict)
    # Whether its chat records may carry a system prompt. Families that take prompt/completion
    # pairs only have none: validation then refuses one and says where its text can go instead
    # (tailor.data.validate), rather than dropping it.
    system_prompt: bool = True

    def limits_for(self, customization_type: CustomizationType) -> DataLimits:
        return self.limits_by_type.get(customization_type, self.limits)


# The original service takes 100 to 20,000 RFT prompts. Its validation-set bounds, file-size
# bounds and a per-prompt token bound are not published (the prompt is bounded by the job's
# maxPromptLength at training time), so they are left open here.
RFT_LIMITS = DataLimits(train_records=(100, 20_000))


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in [
        Family(
            name="tailor",
            description=(
                "Tailor's own family for models it loads from weights: Claude-3-Haiku hyperparameter "
                "names (the original's typed names for RFT), with ranges and defaults sized for the "
                "models it serves."
            ),
            formats={
                CustomizationType.FINE_TUNING: (DataFormat.MESSAGES, DataFormat.PROMPT_COMPLETION),
                CustomizationType.CONTINUED_PRE_TRAINING: (DataFormat.TEXT,),
                CustomizationType.REINFORCEMENT_FINE_TUNING: (DataFormat.RFT_CHAT,),
                CustomizationType.DPO: (DataFormat.PREFERENCE,),
                # Prompts the teacher answers (tailor.train.distill reads them: bedrock-conversation-2024
                # or messages records); the student then trains on the answers as FINE_TUNING does.
                CustomizationType.DISTILLATION: (DataFormat.MESSAGES,),
            },
            limits=DataLimits(
                train_records=(8, 10_000),
                validation_records=(1, 1_000),
                total_records_max=10_000,
                train_bytes_max=10 * GB,
                validation_bytes_max=1 * GB,
            ),
            # The original's 20,000-prompt maximum; a minimum of 8 (not 100) so that tests and
            # the quickstart can train tailor.tiny on a handful of prompts.
            limits_by_type={
                CustomizationType.REINFORCEMENT_FINE_TUNING: DataLimits(
                    train_records=(8, 20_000),
                    validation_records=(1, 1_000),
                    train_bytes_max=10 * GB,
                    validation_bytes_max=1 * GB,
                ),
            },
        ),
        Family(
            name="anthropic.claude-3-haiku",
            invoke_body="anthropic",
            description="Claude 3 Haiku: system + alternating user/assistant messages.",
            formats={CustomizationType.FINE_TUNING: (DataFormat.MESSAGES,)},
            limits=DataLimits(
                train_records=(32, 10_000),
                validation_records=(32, 1_000),
                total_records_max=10_000,
                record_tokens_max=32_000,
                train_bytes_max=10 * GB,
                validation_bytes_max=1 * GB,
            ),
        ),
        Family(
            name="cohere.command",
            system_prompt=False,
            invoke_body="cohere",
            description="Cohere Command and Command Light: prompt/completion pairs.",
            formats={CustomizationType.FINE_TUNING: (DataFormat.PROMPT_COMPLETION,)},
            limits=DataLimits(train_records=(32, None), record_tokens_max=4_096),
        ),
        Family(
            name="meta.llama",
            system_prompt=False,
            invoke_body="llama",
            description="Llama 2 and Llama 3.1: prompt/completion pairs.",
            formats={CustomizationType.FINE_TUNING: (DataFormat.PROMPT_COMPLETION,)},
            limits=DataLimits(
                train_records=(1, 10_000), validation_records=(1, 1_000), record_tokens_max=16_000
            ),
        ),
        Family(
            name="amazon.titan-text",
            system_prompt=False,
            invoke_body="titan",
            description="Titan Text Express and Lite: prompt/completion, or {input} for CPT.",
            formats={
                CustomizationType.FINE_TUNING: (DataFormat.PROMPT_COMPLETION,),
                CustomizationType.CONTINUED_PRE_TRAINING: (DataFormat.TEXT,),
            },
            limits=DataLimits(
                record_tokens_max=4_096, train_bytes_max=10 * GB, validation_bytes_max=100 * MB
            ),
        ),
        Family(
            name="amazon.titan-text-premier",
            system_prompt=False,
            invoke_body="titan",
            description="Titan Text Premier: prompt/completion pairs.",
            formats={CustomizationType.FINE_TUNING: (DataFormat.PROMPT_COMPLETION,)},
            limits=DataLimits(
                record_tokens_max=4_096, train_bytes_max=1 * GB, validation_bytes_max=100 * MB
            ),
        ),
        # The models the original service fine-tunes with reinforcement. They take the typed RFT
        # hyperparameters (tailor.train.hyperparams.RFT_HYPERPARAMETERS), and no string ones.
        Family(
            name="amazon.nova-2",
            # Nova's native InvokeModel body (messages-v1) is not implemented: its models take
            # OpenAI chat-completions bodies here, and Converse.
            description="Amazon Nova 2: reinforcement fine-tuning on single-turn text prompts.",
            formats={CustomizationType.REINFORCEMENT_FINE_TUNING: (DataFormat.RFT_CHAT,)},
            limits=replace(RFT_LIMITS, single_turn=True),
        ),
        Family(
            name="openai.gpt-oss",
            description="OpenAI gpt-oss (open weights): reinforcement fine-tuning on chat prompts.",
            formats={CustomizationType.REINFORCEMENT_FINE_TUNING: (DataFormat.RFT_CHAT,)},
            limits=RFT_LIMITS,
        ),
        Family(
            name="qwen.qwen3",
            description="Qwen3 (open weights): reinforcement fine-tuning on chat prompts.",
            formats={CustomizationType.REINFORCEMENT_FINE_TUNING: (DataFormat.RFT_CHAT,)},
            limits=RFT_LIMITS,
        ),
    ]
}


WeightsKind = Literal["builtin", "local", "hub"]


@dataclass(frozen=True)
class Weights:
    """Where a model's weights come from: the built-in tiny model, a local folder or a hub id."""

    kind: WeightsKind
    location: str  # builtin name, absolute directory, or hub id
    full_learning_rate: float  # what learningRateMultiplier=1 means when training all weights
    lora_learning_rate: float  # ... and when training a LoRA adapter
    default_tuning: Literal["full", "lora"]
    # tailor.tiny, or weights trained from it: hyperparameter defaults sized for the test model.
    test_model: bool = False

    def base_learning_rate(self, tuning_method: str) -> float:
        return self.full_learning_rate if tuning_method == "full" else self.lora_learning_rate


@dataclass(frozen=True)
class FoundationModel:
    model_id: str
    name: str
    provider: str
    family: str
    customization_types: tuple[CustomizationType, ...]
    weights: Weights | None  # None: an original-service id, usable only through an alias
    input_modalities: tuple[str, ...] = ("TEXT",)
    output_modalities: tuple[str, ...] = ("TEXT",)
    inference_types: tuple[str, ...] = ("ON_DEMAND", "PROVISIONED")
    note: str = ""


TINY_MODEL_ID = "tailor.tiny"
TINY_NOTE = (
    "A test model: a few million parameters, built on this machine. It learns what it is "
    "taught and knows nothing else."
)

# Learning rates for weights named by directory or hub id: the usual full and LoRA fine-tuning
# rates for instruction-tuned models of 0.5-8B parameters.
HF_FULL_LEARNING_RATE = 1e-5
HF_LORA_LEARNING_RATE = 1e-4
# tailor.tiny, measured on the 85 FAQ pairs: full 3e-3 memorizes them in 25 epochs; LoRA (r=16)
# on the briefly pre-trained base needs a higher rate (see docs/training.md).
TINY_FULL_LEARNING_RATE = 3e-3
TINY_LORA_LEARNING_RATE = 1e-2

_FT = CustomizationType.FINE_TUNING
_CPT = CustomizationType.CONTINUED_PRE_TRAINING
_RFT = CustomizationType.REINFORCEMENT_FINE_TUNING
_DPO = CustomizationType.DPO
_DISTILLATION = CustomizationType.DISTILLATION

FOUNDATION_MODELS: dict[str, FoundationModel] = {
    model.model_id: model
    for model in [
        FoundationModel(
            model_id=TINY_MODEL_ID,
            name="Tailor Tiny (test)",
            provider="Tailor",
            family="tailor",
            customization_types=(_FT, _CPT, _RFT, _DPO, _DISTILLATION),
            weights=Weights("builtin", "tiny", TINY_FULL_LEARNING_RATE, TINY_LORA_LEARNING_RATE, "full",
                            test_model=True),
            note=TINY_NOTE,
        ),
        FoundationModel(
            "anthropic.claude-3-haiku-20240307-v1:0:200k", "Claude 3 Haiku", "Anthropic",
            "anthropic.claude-3-haiku", (_FT,), None, input_modalities=("TEXT", "IMAGE"),
        ),
        FoundationModel(
            "cohere.command-text-v14:7:4k", "Command", "Cohere", "cohere.command", (_FT,), None
        ),
        FoundationModel(
            "cohere.command-light-text-v14:7:4k", "Command Light", "Cohere", "cohere.command",
            (_FT,), None,
        ),
        FoundationModel(
            "meta.llama3-1-8b-instruct-v1:0:128k", "Llama 3.1 8B", "Meta", "meta.llama",
            (_FT,), None,
        ),
        FoundationModel(
            "meta.llama3-1-70b-instruct-v1:0:128k", "Llama 3.1 70B", "Meta",
            "meta.llama", (_FT,), None,
        ),
        FoundationModel(
            "amazon.titan-text-express-v1:0:8k", "Titan Text Express", "Amazon",
            "amazon.titan-text", (_FT, _CPT), None,
        ),
        FoundationModel(
            "amazon.titan-text-lite-v1:0:4k", "Titan Text Lite", "Amazon",
            "amazon.titan-text", (_FT, _CPT), None,
        ),
        FoundationModel(
            "amazon.titan-text-premier-v1:0:32k", "Titan Text Premier", "Amazon",
            "amazon.titan-text-premier", (_FT,), None,
        ),
        # The base-model ids the original service publishes for RFT, as written. The open-weight ids lack
        # the version suffix their inference ids carry (openai.gpt-oss-20b-1:0, qwen.qwen3-32b-v1:0);
        # whether the original also accepts those as a base model is unconfirmed.
        FoundationModel(
            "amazon.nova-2-lite-v1:0:256k", "Nova 2 Lite", "Amazon", "amazon.nova-2",
            (_RFT,), None,
        ),
        FoundationModel(
            "openai.gpt-oss-20b", "gpt-oss-20b", "OpenAI", "openai.gpt-oss", (_RFT,), None
        ),
        FoundationModel("qwen.qwen3-32b", "Qwen3 32B", "Qwen", "qwen.qwen3", (_RFT,), None),
    ]
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model identifier resolved to a family and to weights Tailor can load."""

    model_id: str  # the identifier as the user knows it (an original id stays as given)
    family: Family
    weights: Weights
    customization_types: tuple[CustomizationType, ...]
    alias_of: str | None = None  # the alias target, when the id was mapped
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Iterative customization: the training output folder of the custom model training starts
    # from, and its LoRA adapter (on ``weights``) when it is one; full weights are in ``weights``.
    trained: str | None = None
    adapter: str | None = None
    # A model of the hub table (tailor.hub_models): its family's chat rules apply when it loads.
    hub_model: HubModel | None = None

    @property
    def context_length(self) -> int | None:
        """The documented context of a hub-table model (it caps the tokenizer's length), else None."""
        return self.hub_model.context_length if self.hub_model else None

    @property
    def lora_target_modules(self) -> str | tuple[str, ...]:
        """What a LoRA adapter wraps: "all-linear", unless the hub table says otherwise."""
        if self.hub_model and self.hub_model.lora_target_modules:
            return self.hub_model.lora_target_modules
        return "all-linear"

    def describe(self) -> str:
        """One line for logs and manifests that says exactly what will be loaded."""
        text = f"{self.model_id} (family {self.family.name}; weights: {self.weights.kind} {self.weights.location})"
        if self.alias_of:
            text += f" — alias from TAILOR_MODEL_ALIASES: {self.model_id} -> {self.alias_of}"
        return text


_FOUNDATION_ARN = re.compile(r"^arn:aws[\w-]*:bedrock:[\w-]*::foundation-model/(?P<id>.+)$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def strip_foundation_arn(identifier: str) -> str:
    match = _FOUNDATION_ARN.match(identifier)
    return match.group("id") if match else identifier


def _weights_for_path_or_hub(identifier: str) -> Weights | None:
    path = Path(identifier).expanduser()
    if path.is_dir():
        return Weights("local", str(path.resolve()), HF_FULL_LEARNING_RATE, HF_LORA_LEARNING_RATE, "lora")
    if identifier.startswith(("/", ".", "~")):
        raise NotFound(f"Model directory {identifier!r} does not exist.")
    if _HUB_ID.match(identifier):
        return Weights("hub", identifier, HF_FULL_LEARNING_RATE, HF_LORA_LEARNING_RATE, "lora")
    return None


def resolve_model(identifier: str, settings: Settings) -> ResolvedModel:
    """Resolve a model id, foundation-model ARN, alias, local directory or hub id.

    Raises ``ModelUnavailable`` for an original-service id without an alias (saying how to add
    one) and ``NotFound`` for anything else Tailor cannot place.
    """
    if not identifier or not identifier.strip():
        raise InvalidInput("A model identifier is required.")
    model_id = strip_foundation_arn(identifier.strip())

    if model_id in settings.model_aliases:
        target = settings.model_aliases[model_id]
        if target in settings.model_aliases or target == model_id:
            raise InvalidInput(f"TAILOR_MODEL_ALIASES maps {model_id!r} to another alias {target!r}; "
                               "an alias must point at a catalog model, a directory or a hub id.")
        resolved_target = resolve_model(target, settings.model_copy(update={"model_aliases": {}}))
        entry = FOUNDATION_MODELS.get(model_id)
        family = FAMILIES[entry.family] if entry else resolved_target.family
        types = entry.customization_types if entry else resolved_target.customization_types
        notes = [f"{model_id} is served by {target} (TAILOR_MODEL_ALIASES); it keeps the "
                 f"{family.name} family's data rules and hyperparameters."]
        # A hub-table id mapped to a folder: the table's rules, for that folder (checked).
        hub = hub_models.find(model_id) or resolved_target.hub_model
        if hub is not None and resolved_target.weights.kind == "local":
            check_architecture(hub, Path(resolved_target.weights.location))
            if entry is None and hub_models.find(model_id):
                model_id, types = hub.hub_id, _hub_types(hub)
                notes = [f"{hub.hub_id}: weights from {target} (TAILOR_MODEL_ALIASES). {_hub_note(hub)}"]
        return ResolvedModel(
            model_id=model_id,
            family=family,
            weights=resolved_target.weights,
            customization_types=types,
            alias_of=target,
            notes=tuple(notes),
            hub_model=hub,
        )

    entry = FOUNDATION_MODELS.get(model_id)
    if entry is not None:
        if entry.weights is None:
            raise ModelUnavailable(
                f"{model_id} is an id of the original service; Tailor has no weights for it. "
                f"Map it to a local model, for example TAILOR_MODEL_ALIASES='{{\"{model_id}\": "
                f"\"{TINY_MODEL_ID}\"}}', or to a model directory or hub id."
            )
        notes = (entry.note,) if entry.note else ()
        return ResolvedModel(model_id, FAMILIES[entry.family], entry.weights,
                             entry.customization_types, notes=notes)

    folder = Path(model_id).expanduser()
    if trained.is_trained(folder):  # a training output folder: a custom model
        return _resolve_trained(folder.resolve(), settings)
    hub = hub_models.find(model_id)
    if hub is not None:
        return _resolve_hub(hub, settings)
    weights = _weights_for_path_or_hub(model_id)
    if weights is not None:
        return ResolvedModel(model_id, FAMILIES["tailor"], weights, tuple(FAMILIES["tailor"].formats))

    known = ", ".join(sorted(FOUNDATION_MODELS))
    raise NotFound(
        f"Unknown model {identifier!r}.{did_you_mean(model_id, settings)} Use a catalog id ({known}), "
        "a local model directory, or a Hugging Face hub id such as 'org/name'."
    )


def resolve_registered_model(identifier: str, settings: Settings) -> ResolvedModel:
    """Resolve a model the operator made available: a catalog id (or its ARN) or an alias key.

    What an API caller may name. Unlike ``resolve_model`` it never looks at the server's folders
    or at a hub, so a caller can neither read a server path nor learn which folders exist.
    """
    model_id = strip_foundation_arn((identifier or "").strip())
    if model_id in settings.model_aliases or model_id in FOUNDATION_MODELS:
        return resolve_model(model_id, settings)
    raise NotFound(f"Unknown model {identifier!r}: not in Tailor's catalog ({', '.join(sorted(FOUNDATION_MODELS))}) "
                   f"and not mapped by the operator (TAILOR_MODEL_ALIASES).{did_you_mean(model_id, settings)}")


def did_you_mean(identifier: str, settings: Settings) -> str:
    """" Did you mean 'tailor.tiny'?" for a mistyped catalog id or alias (up to three names, the
    closest first, by ``difflib``'s similarity of at least 0.6); "" when no name is close. Only
    names a caller may use anyway are offered: catalog ids and the operator's alias keys."""
    names = sorted({*FOUNDATION_MODELS, *settings.model_aliases})
    close = difflib.get_close_matches(identifier, names, n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(name) for name in close) + "?"


def base_of(model: TrainedModel) -> str:
    """What resolves to a trained folder's base weights (for an adapter, what it goes on): the
    built-in model by its id (rebuilt if its cache was cleared), else its folder or hub id — by the
    weights the manifest recorded, not by an alias that may have changed since."""
    return TINY_MODEL_ID if model.base_weights_kind == "builtin" else model.base_weights_location


def _resolve_trained(folder: Path, settings: Settings) -> ResolvedModel:
    """A training output folder (a custom model): the model it was trained from, with training
    starting from its weights. Full weights replace the base's; a LoRA adapter goes on its base."""
    model = trained.read(folder)
    if model.base_weights_kind == "builtin":
        origin = resolve_model(TINY_MODEL_ID, settings)
    else:
        origin = resolve_model(model.base_weights_location, settings.model_copy(update={"model_aliases": {}}))
    if origin.hub_model is None and hub_models.find(model.base_model_id or ""):
        origin = replace(origin, hub_model=hub_models.find(model.base_model_id))  # trained from a hub model
    family = FAMILIES.get(model.family, origin.family)
    note = (f"Training continues from the custom model in {folder} ({model.customization_type}, "
            f"{model.tuning_method}) of {model.base_model_id}.")
    if model.is_adapter:
        weights, adapter = origin.weights, str(model.model_dir)
    else:
        weights, adapter = replace(origin.weights, kind="local", location=str(model.model_dir)), None
    return ResolvedModel(model.base_model_id or origin.model_id, family, weights, origin.customization_types,
                         notes=(note,), trained=str(folder), adapter=adapter, hub_model=origin.hub_model)


# ---------------------------------------------------------------------------------------------
# Open models by hub id (tailor.hub_models): weights on this machine, never downloaded.


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, as huggingface_hub finds it, read from the environment now
    (``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ``$XDG_CACHE_HOME``/huggingface/hub or
    ``~/.cache/huggingface/hub``): huggingface_hub reads it once, at import."""
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def operator_folder(hub: HubModel, settings: Settings) -> Path:
    """Where an operator may put a hub model's folder by hand: ``TAILOR_HOME/models/ORG/NAME``."""
    return settings.models_dir / hub.hub_id


def cached_snapshot(hub_id: str, cache: Path) -> Path | None:
    """The folder of the revision ``refs/main`` names in the hub cache ``cache``, or None.
    Offline: huggingface_hub's own lookup with ``local_files_only``; a cache folder spelled in
    another case (the hub's ids are case-insensitive) is found too."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    ids = [hub_id]
    if cache.is_dir():
        wanted = "models--" + hub_id.replace("/", "--").lower()
        ids += [entry.name[len("models--"):].replace("--", "/", 1) for entry in cache.iterdir()
                if entry.name.lower() == wanted and entry.name != "models--" + hub_id.replace("/", "--")]
    for repo_id in ids:
        try:
            return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            continue
    return None


def _hub_types(hub: HubModel) -> tuple[CustomizationType, ...]:
    """A hub model's types; one that fine-tunes can also be a distillation student (the student's
    training is fine-tuning on the teacher's answers, tailor.train.distill)."""
    types = tuple(CustomizationType(value) for value in hub.customization_types)
    if CustomizationType.FINE_TUNING in types and _DISTILLATION not in types:
        types += (_DISTILLATION,)
    return types


def _hub_note(hub: HubModel) -> str:
    architecture = ARCHITECTURES[hub.architecture]
    note = (f"{hub.architecture} family: {hub.context_length:,} tokens of context, about {hub.parameters_b:g} B "
            f"parameters; stops on {architecture.end_of_turn}.")
    if not architecture.system_role:
        note += " Its chat format has no system role: a system message goes into the first user turn."
    return note


def check_architecture(hub: HubModel, folder: Path) -> None:
    """Refuse a folder whose config.json declares another architecture than the table's family."""
    architecture = ARCHITECTURES[hub.architecture]
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{folder} is not a model folder for {hub.hub_id}: its config.json cannot be "
                           f"read ({error}).") from error
    model_type = config.get("model_type")
    if model_type not in architecture.model_types:
        declared = ", ".join(config.get("architectures") or []) or "no architectures"
        raise InvalidInput(
            f"{folder} holds a {model_type!r} model ({declared}), but {hub.hub_id} is a {hub.architecture} "
            f"model (config model_type {' or '.join(map(repr, architecture.model_types))}). Tailor does not "
            f"apply {hub.hub_id}'s rules to other weights: put {hub.hub_id}'s own files there, or name the "
            "folder itself instead of the hub id.")


def _resolve_hub(hub: HubModel, settings: Settings) -> ResolvedModel:
    """A hub-table id: the first of ``TAILOR_HOME/models/ORG/NAME`` and the hub cache that holds it."""
    folder = operator_folder(hub, settings)
    cache = hub_cache_dir()
    where = f"{folder}"
    if not (folder / "config.json").is_file():
        snapshot = cached_snapshot(hub.hub_id, cache)
        folder, where = snapshot, "the Hugging Face cache"
        if snapshot is None or not (snapshot / "config.json").is_file():
            incomplete = (f" The cache has a snapshot of it in {snapshot} without config.json (an unfinished "
                          "download?).") if snapshot is not None else ""
            raise ModelUnavailable(
                f"Model {hub.hub_id} is not on this machine, and Tailor does not download weights. It looked in "
                f"TAILOR_MODEL_ALIASES (no entry for {hub.hub_id!r}), in {operator_folder(hub, settings)} and in "
                f"the Hugging Face cache {cache / ('models--' + hub.hub_id.replace('/', '--'))} (HF_HUB_CACHE or "
                f"HF_HOME).{incomplete} To put it there: on a machine with access, `hf download {hub.hub_id}` "
                f"(gated models need an accepted licence and a token) and copy the cache folder here, or "
                f"`hf download {hub.hub_id} --local-dir DIR`, then copy DIR to {operator_folder(hub, settings)} "
                f"or map it: TAILOR_MODEL_ALIASES='{{\"{hub.hub_id}\": \"/path/to/DIR\"}}'.")
    folder = folder.resolve()
    check_architecture(hub, folder)
    weights = Weights("local", str(folder), HF_FULL_LEARNING_RATE, HF_LORA_LEARNING_RATE, "lora")
    return ResolvedModel(hub.hub_id, FAMILIES["tailor"], weights, _hub_types(hub),
                         notes=(f"{hub.hub_id}: weights from {where} ({folder}). {_hub_note(hub)}",),
                         hub_model=hub)
