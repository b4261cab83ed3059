"""The create-time estimate of a supervised job (``preflight``): cheap, no torch, no weights, no
download. The model's shape from its ``config.json`` by arithmetic (``shape_from_config``), the
data's longest record and tokens from the training file when it is small (``summarize_data``), and
the ``plan`` (``train/plan.py``) on this server's devices (``train/devices.py``); a job that cannot
fit is refused. The formulas are the run estimate's (``train/estimate.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tailor.catalog import CustomizationType
from tailor.train.devices import budget_source, device_budget, on_gpu, processes_for
from tailor.train.estimate import (
    BYTES_PER_PARAMETER,
    DEFAULT_CPU_FLOPS,
    ModelShape,
    TuningMethod,
    _count,
    _duration,
    _size,
    default_tokens_per_second,
    estimate_time,
)
from tailor.train.plan import COMPUTE_BYTES_GPU, Plan, plan

# The create-time estimate: cheap, no torch, no weights, no download.

# An effective bfloat16 training rate of one data-centre GPU, assumed (not measured here): about
# a third of a recent GPU's dense peak. Only for the time shown at create time.
DEFAULT_GPU_FLOPS = 100e12
# Data files up to this size are read at create time to bound the sequence length and count the
# tokens; a larger one is not read there (its records' length is bounded by the model's context
# and the family's per-record limit instead).
PREFLIGHT_READ_BYTES_MAX = 16 * 1024**2
CHARACTERS_PER_TOKEN = 3  # without a tokenizer, as the data validator estimates (and AWS's)
TEMPLATE_TOKENS_PER_MESSAGE = 4  # role markers and end of turn, per message, in chat templates
CPT_WINDOW = 1024  # train/cpt.py's MAX_WINDOW: continued pre-training cuts text into such windows

KNOWN_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3")


def shape_from_config(config: dict, tuning_method: TuningMethod, lora_rank: int = 16) -> ModelShape | None:
    """``model_shape`` from a model's ``config.json`` alone, by arithmetic (no torch): for the
    decoder-only families Tailor trains (``KNOWN_MODEL_TYPES``); None for any other model."""
    text = config.get("text_config") or config
    model_type = text.get("model_type") or config.get("model_type")
    if model_type not in KNOWN_MODEL_TYPES:
        return None
    try:
        hidden, layers = int(text["hidden_size"]), int(text["num_hidden_layers"])
        vocab, heads = int(text["vocab_size"]), int(text["num_attention_heads"])
        intermediate = int(text.get("intermediate_size") or 4 * hidden)
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    q, kv = heads * head_dim, kv_heads * head_dim
    attention_bias = bool(text.get("attention_bias", False))
    mlp_bias = bool(text.get("mlp_bias", False))
    if model_type == "phi3":  # fused projections
        linears = [(hidden, q + 2 * kv, False), (q, hidden, False), (hidden, 2 * intermediate, False),
                   (intermediate, hidden, False)]
    else:
        qkv_bias = attention_bias or model_type == "qwen2"
        linears = [(hidden, q, qkv_bias), (hidden, kv, qkv_bias), (hidden, kv, qkv_bias), (q, hidden, attention_bias),
                   (hidden, intermediate, mlp_bias), (hidden, intermediate, mlp_bias), (intermediate, hidden, mlp_bias)]
    norms = 4 * hidden if model_type in ("gemma2", "gemma3_text") else 2 * hidden
    if model_type in ("qwen3", "gemma3_text"):
        norms += 2 * head_dim  # q_norm, k_norm
    layer = sum(inputs * outputs + (outputs if bias else 0) for inputs, outputs, bias in linears) + norms
    tied = bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", True)))
    embedding = vocab * hidden
    parameters = embedding + layers * layer + hidden + (0 if tied else embedding)
    per_rank = layers * sum(inputs + outputs for inputs, outputs, _ in linears)
    lora = lora_rank * per_rank
    matmul = parameters - (0 if tied else embedding)
    return ModelShape(
        parameters=parameters,
        trainable_parameters=parameters if tuning_method == "full" else lora,
        matmul_parameters=matmul + (lora if tuning_method == "lora" else 0),
        layers=layers, hidden_size=hidden, intermediate_size=intermediate, vocab_size=vocab,
        linear_outputs_per_layer=sum(outputs for _, outputs, _ in linears),
        tuning_method=tuning_method, layer_parameters=(layers * layer + hidden) // layers,
        adapter_parameters_per_rank=per_rank,
        lora_rank=lora_rank,
    )


def config_json(model, settings) -> dict | None:
    """A resolved model's ``config.json``, if it can be had without building or downloading
    anything: the built-in model's (from its recipe when it is not built yet), a folder's, or a hub
    model's from the local cache; None otherwise."""
    from pathlib import Path

    weights = model.weights
    if weights.kind == "builtin":
        from tailor import tiny

        built = settings.models_dir / f"tailor.tiny-v{tiny.BUILD_VERSION}" / "config.json"
        if built.is_file():
            return json.loads(built.read_text())
        recipe = tiny.RECIPE
        return {"model_type": "llama", "vocab_size": recipe.vocab_size, "hidden_size": recipe.hidden_size,
                "intermediate_size": recipe.intermediate_size, "num_hidden_layers": recipe.num_layers,
                "num_attention_heads": recipe.num_heads, "num_key_value_heads": recipe.num_heads,
                "max_position_embeddings": recipe.max_positions, "tie_word_embeddings": False}
    if weights.kind == "local":
        path = Path(weights.location) / "config.json"
        return json.loads(path.read_text()) if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(weights.location, "config.json")
    except Exception:  # an id the hub library refuses: no estimate, the worker says what is wrong
        return None
    return json.loads(Path(cached).read_text()) if isinstance(cached, str) else None


@dataclass(frozen=True)
class DataSummary:
    """What a data file says about a run's shape, cheaply: the longest record's tokens (estimated
    as characters / 3 plus the template's per message, or None when the file was too big to read
    at create time), its records and its tokens (estimated from its size when not read)."""

    longest: int | None
    records: int | None
    tokens: int


def summarize_data(uri: str, settings, continued_pre_training: bool = False) -> DataSummary | None:
    """Read a data file at create time if it is small enough; None if it cannot be read."""
    from tailor import storage

    lengths = []
    try:
        size = storage.size(uri, settings)
        if size > PREFLIGHT_READ_BYTES_MAX:
            return DataSummary(None, None, size // CHARACTERS_PER_TOKEN)
        for line in storage.iter_lines(uri, settings):  # a line at a time: the file is never whole in memory
            try:
                record = json.loads(line.decode("utf-8", errors="replace"))
            except ValueError:
                continue
            if isinstance(record, dict):
                lengths.append(_record_tokens(record))
    except Exception:  # the worker's validation reports an unreadable file; the estimate skips it
        return None
    if not lengths:
        return None
    longest = max(lengths)
    if continued_pre_training:
        longest = min(longest, CPT_WINDOW)
    return DataSummary(longest, len(lengths), sum(lengths))


def _record_tokens(record: dict) -> int:
    texts, messages = [], 0
    for key, value in record.items():
        if isinstance(value, str):
            texts.append(value)
            messages += key in ("system", "prompt", "completion")
        elif key == "messages" and isinstance(value, list):
            for message in value:
                if isinstance(message, dict):
                    messages += 1
                    content = message.get("content")
                    texts.append(content if isinstance(content, str) else json.dumps(content))
    return sum(len(text) // CHARACTERS_PER_TOKEN + 1 for text in texts) + TEMPLATE_TOKENS_PER_MESSAGE * messages


@dataclass(frozen=True)
class Preflight:
    """A job's estimate at create time: the plan on this server's devices and the time."""

    plan: Plan
    processes: int
    budget_bytes: int
    budget_source: str  # TAILOR_DEVICE_MEMORY_GIB, the GPU's memory, or available RAM
    batch_size: int
    sequence_length: int
    sequence_source: str  # "data" or "context"
    tuning_method: TuningMethod
    parameters: int
    seconds: float

    def describe(self) -> str:
        plan = self.plan
        layout = "fully sharded" if plan.sharded else "data parallel"
        processes = f"{self.processes} process{'es' * (self.processes != 1)}"
        checkpointing = "activation checkpointing" if plan.activation_checkpointing else "no activation checkpointing"
        return (f"Estimated peak memory {_size(plan.peak_bytes)} per device of {_size(self.budget_bytes)} "
                f"({processes}, {layout}, micro-batch {plan.micro_batch_size}, {checkpointing}); "
                f"about {_duration(self.seconds)}.")

    def refusal(self) -> str:
        processes = f"{self.processes} process{'es' * (self.processes != 1)}"
        return (f"This job does not fit: its estimated peak memory is {_size(self.plan.peak_bytes)} per device "
                f"({self.tuning_method} training of {_count(self.parameters)} parameters, batch {self.batch_size}, "
                f"sequences of {self.sequence_length:,} tokens, {processes}), and a device has "
                f"{_size(self.budget_bytes)} ({self.budget_source}). What would make it fit: "
                + "; or ".join(self.plan.advice) + ".")

    def data(self) -> dict:
        plan = self.plan
        return {"peak_bytes": plan.peak_bytes, "budget_bytes": self.budget_bytes, "fits": plan.fits,
                "processes": self.processes, "sharded": plan.sharded, "micro_batch_size": plan.micro_batch_size,
                "activation_checkpointing": plan.activation_checkpointing, "batch_size": self.batch_size,
                "sequence_length": self.sequence_length, "sequence_length_from": self.sequence_source,
                "tuning_method": self.tuning_method, "parameters": self.parameters,
                "seconds": round(self.seconds, 1), "advice": list(plan.advice)}


def preflight(model, config, customization_type, training_uri: str, settings,
              parallelism: str = "auto") -> Preflight | None:
    """The create-time estimate of a supervised job: ``model`` a ``catalog.ResolvedModel``,
    ``config`` its ``hyperparams.TrainConfig``. Reads the model's config.json and, if small, the
    training data; never torch, weights or a download. None when the model's config is not
    available here (a hub model not downloaded yet) or its architecture is not one it knows."""
    kind = CustomizationType(customization_type)
    if kind == CustomizationType.REINFORCEMENT_FINE_TUNING:
        return None
    raw = config_json(model, settings)
    shape = shape_from_config(raw, config.tuning_method, config.lora_rank) if raw else None
    if shape is None:
        return None
    text = raw.get("text_config") or raw
    bounds = [int(text.get("max_position_embeddings") or 0) or None,
              model.family.limits_for(kind).record_tokens_max,
              CPT_WINDOW if kind == CustomizationType.CONTINUED_PRE_TRAINING else None]
    context = min(bound for bound in bounds if bound) if any(bounds) else CPT_WINDOW
    data = summarize_data(training_uri, settings, kind == CustomizationType.CONTINUED_PRE_TRAINING)
    if data is not None and data.longest is not None:
        sequence, source = min(data.longest, context), "data"
    else:
        sequence, source = context, "context"
    batch = min(config.batch_size, data.records) if data and data.records else config.batch_size
    processes, budget = processes_for(settings), device_budget(settings)
    gpu = on_gpu(settings)
    chosen = plan(shape, batch, sequence, budget, processes, config.micro_batch_size,
                  getattr(config, "activation_checkpointing", None),
                  activation_bytes=COMPUTE_BYTES_GPU if gpu else BYTES_PER_PARAMETER,
                  sharded={"data-parallel": False, "fully-sharded": True}.get(parallelism))
    tokens = data.tokens if data else batch * sequence
    flops = (DEFAULT_GPU_FLOPS if gpu else DEFAULT_CPU_FLOPS) * (processes if gpu else 1)
    seconds = estimate_time(shape, tokens, config.epochs,
                            tokens_per_second=default_tokens_per_second(shape, flops)).seconds
    if chosen.activation_checkpointing:
        seconds *= 4 / 3  # the forward pass runs twice: about a third more compute
    return Preflight(plan=chosen, processes=processes, budget_bytes=budget, budget_source=budget_source(settings),
                     batch_size=batch,
                     sequence_length=sequence, sequence_source=source, tuning_method=shape.tuning_method,
                     parameters=shape.parameters, seconds=seconds)
