"""The common open model architectures Tailor trains and serves, as data: for each family its
transformers classes, chat template, special tokens, end-of-turn token and the modules a LoRA
adapter wraps — and a builder of a *small random-initialised* model of each, with a byte-level
BPE tokenizer trained here and the family's chat template, so tests (and later the catalog) can
exercise every family offline in about a second.

The chat templates are written by the project in each family's documented format (Llama 3's
``<|start_header_id|>…<|eot_id|>``, Qwen 2.5's ChatML ``<|im_start|>…<|im_end|>``, Mistral's
``[INST]…[/INST]…</s>``, Gemma 2's ``<start_of_turn>…<end_of_turn>``, Phi-3's
``<|user|>…<|end|>``; Qwen3's ChatML, Gemma 3's turns as Gemma 2's, Phi-4's
``<|im_start|>user<|im_sep|>…<|im_end|>``), simplified (no tools, no Qwen3 thinking block) and with ``{% generation %}`` markers around each
assistant answer *and its end-of-turn token*: ``tailor.data.render`` takes the loss on exactly
those tokens, which is what teaches a model to stop. The markers render nothing, so a template
produces the same text as the family's own.

Deliberate choices, where the originals vary:
- A system message is folded into the first user turn for Gemma 2 and 3 (whose template has no
  system role: ``Architecture.system_role`` is False) and Mistral (v0.3's puts it in the *last* user turn, which would make an inference prompt
  differ from the prefix of the same conversation rendered for training).
- Every small tokenizer is a byte-level BPE (the real Mistral, Gemma and Phi-3 ship SentencePiece
  vocabularies: what the tests exercise is the template, the special tokens and the model, not
  the vocabulary). All pre-tokenize with Llama 3's split pattern (Qwen: its own, single digits,
  plus NFC, which transformers' Qwen2Tokenizer imposes when it loads a qwen2 folder); newlines
  are chunks of their own, so a prompt that ends in ``\\n`` tokenizes as the prefix of the full
  conversation.

torch, transformers and tokenizers are imported inside the functions that use them; the small
models' tokenizers learn from the text ``tailor.tiny`` trains on (``tiny.corpus_text``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tailor.tiny import corpus_text

# Llama 3's pre-tokenizer pattern; Qwen 2's is the same with single digits (``QWEN_SPLIT_PATTERN``,
# which transformers' Qwen2Tokenizer imposes when it loads a folder whose model type is qwen2).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPLIT_PATTERN = SPLIT_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
GATED_MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Architecture:
    """One model family: how its weights, tokenizer and conversations look."""

    name: str
    model_class: str  # transformers class name, e.g. "LlamaForCausalLM"
    config_class: str
    chat_template: str
    end_of_turn: str  # the token that ends an assistant turn (inside the generation markers)
    special_tokens: tuple[str, ...]
    eos: str  # the tokenizer's eos_token
    stop_tokens: tuple[str, ...]  # the generation config's eos_token_id list
    lora_target_modules: tuple[str, ...]  # what LoRA on "every linear layer of the blocks" wraps
    bos: str | None = None
    pad: str | None = None  # None: the family ships no pad token (Llama 3, Mistral)
    split_pattern: str = SPLIT_PATTERN  # the tokenizer's pre-tokenizer regex
    nfc: bool = False  # the tokenizer normalizes text to Unicode NFC first (Qwen)
    answer_prefix: str = ""  # text the template puts before an answer, inside the markers
    # config.json ``model_type`` values of this family's real checkpoints (a folder whose type is
    # not among them is refused by the catalog for a hub id of this family).
    model_types: tuple[str, ...] = ()
    # The format has a turn of its own for a system message; False: the template folds a system
    # message into the first user turn (Gemma, Mistral).
    system_role: bool = True
    small_config: Mapping[str, object] = field(default_factory=dict)  # besides the shared sizes


LLAMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

QWEN25_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% elif not (loop.first and message['role'] == 'system') %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Shared by the templates that fold a system message into the first user turn.
_SPLIT_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system_message = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system_message = '' %}{% set loop_messages = messages %}{% endif %}"
)

MISTRAL_TEMPLATE = (
    "{{ bos_token }}" + _SPLIT_SYSTEM +
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}"
    "{% if loop.first and system_message %}"
    "{{ '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + '[/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}"
    "{% generation %}{{ ' ' + message['content'] | trim + eos_token }}{% endgeneration %}"
    "{% endif %}"
    "{% endfor %}"
)

GEMMA2_TEMPLATE = (
    "{{ bos_token }}" + _SPLIT_SYSTEM +
    "{% for message in loop_messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<start_of_turn>model\\n' }}"
    "{% generation %}{{ message['content'] | trim + '<end_of_turn>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}"
    "{{ '<start_of_turn>user\\n' }}"
    "{% if loop.first and system_message %}{{ system_message + '\\n\\n' }}{% endif %}"
    "{{ message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)

PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"
)

# Qwen3: ChatML as Qwen 2.5, without a default system message. The original also writes an empty
# ``<think>\n\n</think>\n\n`` before the last answer (thinking mode); this one does not.
QWEN3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Phi-4 (microsoft/phi-4): ChatML with ``<|im_sep|>`` after the role, no newlines.
PHI4_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant<|im_sep|>' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '<|im_sep|>' + message['content'] + '<|im_end|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}"
)

ARCHITECTURES: dict[str, Architecture] = {
    "llama3": Architecture(
        name="llama3", model_class="LlamaForCausalLM", config_class="LlamaConfig",
        chat_template=LLAMA3_TEMPLATE, end_of_turn="<|eot_id|>",
        special_tokens=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                        "<|eot_id|>", "<|eom_id|>"),
        bos="<|begin_of_text|>", eos="<|eot_id|>", stop_tokens=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        lora_target_modules=ATTENTION + GATED_MLP, model_types=("llama",),
        small_config={"rope_theta": 500000.0, "tie_word_embeddings": False},
    ),
    "qwen2.5": Architecture(
        name="qwen2.5", model_class="Qwen2ForCausalLM", config_class="Qwen2Config",
        chat_template=QWEN25_TEMPLATE, end_of_turn="<|im_end|>",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        eos="<|im_end|>", pad="<|endoftext|>", stop_tokens=("<|im_end|>", "<|endoftext|>"),
        lora_target_modules=ATTENTION + GATED_MLP, split_pattern=QWEN_SPLIT_PATTERN, nfc=True,
        model_types=("qwen2",),
        small_config={"rope_theta": 1000000.0, "tie_word_embeddings": True, "use_sliding_window": False},
    ),
    "qwen3": Architecture(
        name="qwen3", model_class="Qwen3ForCausalLM", config_class="Qwen3Config",
        chat_template=QWEN3_TEMPLATE, end_of_turn="<|im_end|>",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"),
        eos="<|im_end|>", pad="<|endoftext|>", stop_tokens=("<|im_end|>", "<|endoftext|>"),
        lora_target_modules=ATTENTION + GATED_MLP, split_pattern=QWEN_SPLIT_PATTERN, nfc=True,
        model_types=("qwen3",),
        small_config={"head_dim": 16, "rope_theta": 1000000.0, "tie_word_embeddings": True,
                      "use_sliding_window": False},
    ),
    "mistral": Architecture(
        name="mistral", model_class="MistralForCausalLM", config_class="MistralConfig",
        chat_template=MISTRAL_TEMPLATE, end_of_turn="</s>",
        special_tokens=("<unk>", "<s>", "</s>", "[INST]", "[/INST]"),
        bos="<s>", eos="</s>", stop_tokens=("</s>",), answer_prefix=" ",
        lora_target_modules=ATTENTION + GATED_MLP, model_types=("mistral",), system_role=False,
        small_config={"rope_theta": 1000000.0, "tie_word_embeddings": False, "sliding_window": None},
    ),
    "gemma2": Architecture(
        name="gemma2", model_class="Gemma2ForCausalLM", config_class="Gemma2Config",
        chat_template=GEMMA2_TEMPLATE, end_of_turn="<end_of_turn>",
        special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        bos="<bos>", eos="<eos>", pad="<pad>", stop_tokens=("<eos>", "<end_of_turn>"),
        lora_target_modules=ATTENTION + GATED_MLP, model_types=("gemma2",), system_role=False,
        small_config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64,
                      "tie_word_embeddings": True},
    ),
    # Gemma 3: Gemma 2's turns. The 1B checkpoint is text only (gemma3_text); 4B and larger are
    # image-text models (gemma3, Gemma3ForConditionalGeneration) whose language model is this.
    "gemma3": Architecture(
        name="gemma3", model_class="Gemma3ForCausalLM", config_class="Gemma3TextConfig",
        chat_template=GEMMA2_TEMPLATE, end_of_turn="<end_of_turn>",
        special_tokens=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
        bos="<bos>", eos="<eos>", pad="<pad>", stop_tokens=("<eos>", "<end_of_turn>"),
        lora_target_modules=ATTENTION + GATED_MLP, model_types=("gemma3", "gemma3_text"), system_role=False,
        small_config={"head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 64,
                      "tie_word_embeddings": True},
    ),
    "phi3": Architecture(
        name="phi3", model_class="Phi3ForCausalLM", config_class="Phi3Config",
        chat_template=PHI3_TEMPLATE, end_of_turn="<|end|>",
        special_tokens=("<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>",
                        "<|user|>"),
        bos="<s>", eos="<|endoftext|>", pad="<|endoftext|>",
        stop_tokens=("<|endoftext|>", "<|assistant|>", "<|end|>"),
        lora_target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"), model_types=("phi3",),
        small_config={"tie_word_embeddings": False, "num_key_value_heads": 4},
    ),
    # Phi-4 (14B): Phi-3's model class with a ChatML-style format and a tiktoken vocabulary.
    "phi4": Architecture(
        name="phi4", model_class="Phi3ForCausalLM", config_class="Phi3Config",
        chat_template=PHI4_TEMPLATE, end_of_turn="<|im_end|>",
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>"),
        bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>", stop_tokens=("<|im_end|>", "<|endoftext|>"),
        lora_target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"), model_types=("phi3",),
        small_config={"tie_word_embeddings": False, "num_key_value_heads": 4},
    ),
}


@dataclass(frozen=True)
class SmallSizes:
    """The shared sizes of a small test model: builds in about a second, learns one answer in
    a few dozen steps."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_key_value_heads: int = 2
    max_positions: int = 512
    corpus_characters: int = 200_000


SMALL = SmallSizes()


def train_tokenizer(architecture: Architecture, text: str, sizes: SmallSizes = SMALL):
    """A byte-level BPE tokenizer over ``text`` with the family's special tokens and template."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    if architecture.nfc:
        backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(architecture.split_pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=sizes.vocab_size,
        special_tokens=list(architecture.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    backend.train_from_iterator(text.splitlines(), trainer)
    named = {"bos_token": architecture.bos, "eos_token": architecture.eos, "pad_token": architecture.pad}
    named = {key: value for key, value in named.items() if value is not None}
    if "<unk>" in architecture.special_tokens:
        named["unk_token"] = "<unk>"
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        additional_special_tokens=[t for t in architecture.special_tokens if t not in named.values()],
        model_max_length=sizes.max_positions,
        padding_side="left",
        clean_up_tokenization_spaces=False,
        **named,
    )
    tokenizer.chat_template = architecture.chat_template
    return tokenizer


def small_config(architecture: Architecture, tokenizer, sizes: SmallSizes = SMALL):
    import transformers

    config_class = getattr(transformers, architecture.config_class)
    ids = {
        "bos_token_id": tokenizer.convert_tokens_to_ids(architecture.bos) if architecture.bos else None,
        "eos_token_id": tokenizer.convert_tokens_to_ids(architecture.eos),
        "pad_token_id": tokenizer.pad_token_id,
    }
    values = {
        "vocab_size": len(tokenizer),
        "hidden_size": sizes.hidden_size,
        "intermediate_size": sizes.intermediate_size,
        "num_hidden_layers": sizes.num_layers,
        "num_attention_heads": sizes.num_heads,
        "num_key_value_heads": sizes.num_key_value_heads,
        "max_position_embeddings": sizes.max_positions,
        **ids,
        **architecture.small_config,
    }
    return config_class(**values)


def build_small(name: str, out_dir: Path, text: str | None = None, seed: int = 0,
                sizes: SmallSizes = SMALL) -> Path:
    """Write a small random-initialised model of the family ``name`` to ``out_dir``, with its
    tokenizer, chat template and generation config (its stop tokens), loadable by
    ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained(out_dir)``."""
    import torch
    import transformers
    from transformers import GenerationConfig

    architecture = ARCHITECTURES[name]
    if text is None:
        text = corpus_text()[: sizes.corpus_characters]
    tokenizer = train_tokenizer(architecture, text, sizes)
    config = small_config(architecture, tokenizer, sizes)
    torch.manual_seed(seed)
    model = getattr(transformers, architecture.model_class)(config)
    stops = [tokenizer.convert_tokens_to_ids(token) for token in architecture.stop_tokens]
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=stops if len(stops) > 1 else stops[0],
        pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=128,
    )
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def for_model_type(model_type: str, vocabulary: Mapping[str, int] | None = None) -> Architecture | None:
    """The family a Hugging Face folder of ``model_type`` (its config.json's) belongs to, or None
    when Tailor has none for it. Phi-3 and Phi-4 share a model type: a vocabulary with Phi-4's
    ``<|im_sep|>`` token is Phi-4's (without a vocabulary, Phi-3 is assumed)."""
    found = [architecture for architecture in ARCHITECTURES.values() if model_type in architecture.model_types]
    if len(found) > 1 and vocabulary is not None:
        found = sorted(found, key=lambda architecture: not all(
            token in vocabulary for token in architecture.special_tokens))
    return found[0] if found else None


def served_model_types() -> list[str]:
    """Every config.json ``model_type`` some family takes, for messages that list them."""
    return sorted({model_type for architecture in ARCHITECTURES.values() for model_type in architecture.model_types})
