"""The built-in test model ``tailor.tiny``, built deterministically on first use.

It is a *test model*: a Llama-architecture network of a few million parameters with a byte-level
BPE tokenizer trained here, briefly pre-trained on the Python reference text the package ships
(``assets/corpus-python-reference.txt.gz``). It learns what it is taught and knows nothing else.
The pre-training matters: LoRA cannot learn on a randomly initialized base, whose frozen
small-norm embeddings cap the logits (measured: ~0/85 answers learned without it).

The build is seeded and fixed in steps (not in seconds), saved with ``save_pretrained`` under
``$TAILOR_HOME/models/tailor.tiny-v<BUILD_VERSION>`` and reloaded with ``from_pretrained``.
Concurrent first uses are safe: one process builds under a file lock, into a temporary folder
that is renamed into place only when complete.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

BUILD_VERSION = 1
OnStep = Callable[[int, int], None]

END_OF_TURN = "<|end|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = [PAD, END_OF_TURN, "<|system|>", "<|user|>", "<|assistant|>"]

# Turns are delimited by special tokens only, so a conversation's text segments are tokenized
# independently: the tokens of a prompt rendered for inference are exactly a prefix of the tokens
# of the same conversation rendered for training. The assistant's end-of-turn token sits inside
# the generation markers so that an assistant-only loss teaches the model to stop.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


@dataclass(frozen=True)
class TinyRecipe:
    """Everything that determines the built model; changing any value needs a new BUILD_VERSION."""

    seed: int = 1234
    vocab_size: int = 4096
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 1024
    pretrain_steps: int = 300
    pretrain_batch_size: int = 16
    pretrain_sequence_length: int = 128
    pretrain_learning_rate: float = 3e-3


RECIPE = TinyRecipe()


def corpus_text() -> str:
    data = resources.files("tailor.assets").joinpath("corpus-python-reference.txt.gz").read_bytes()
    return gzip.decompress(data).decode("utf-8")


def tokenizer_dir(models_dir: Path) -> Path:
    """The tokenizer alone (about a second to build): validating data needs no model weights."""
    return _cached(models_dir / f"tailor.tiny-v{BUILD_VERSION}-tokenizer",
                   lambda out: train_tokenizer(corpus_text(), RECIPE).save_pretrained(out))


def tiny_model_dir(models_dir: Path, progress: bool = True, on_step: OnStep | None = None) -> Path:
    """The folder of the built tiny model, building it first if it is not cached (``on_step(done,
    total)`` after each pre-training step: a job shows the build's progress through its API)."""
    return _cached(models_dir / f"tailor.tiny-v{BUILD_VERSION}",
                   lambda out: build(out, RECIPE, tokenizer_dir(models_dir), progress=progress, on_step=on_step))


def is_built(models_dir: Path) -> bool:
    return (models_dir / f"tailor.tiny-v{BUILD_VERSION}").is_dir()


def _cached(target: Path, make) -> Path:
    """Build ``target`` once: under a file lock, into a scratch folder renamed into place at the end."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_dir():  # another process built it while we waited
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".building-") as scratch:
            make(Path(scratch) / "out")
            os.rename(Path(scratch) / "out", target)
    return target


def train_tokenizer(text: str, recipe: TinyRecipe):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=recipe.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    backend.train_from_iterator(text.splitlines(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=END_OF_TURN,
        pad_token=PAD,
        additional_special_tokens=SPECIAL_TOKENS[2:],
        model_max_length=recipe.max_positions,
        padding_side="left",  # batched generation needs left padding; training pads itself
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build(out_dir: Path, recipe: TinyRecipe, tokenizer_folder: Path, progress: bool = True,
          on_step: OnStep | None = None) -> None:
    """Initialize the model with a fixed seed, pre-train it on the corpus, save it with its tokenizer."""
    import torch
    from transformers import (
        AutoTokenizer,
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    started = time.perf_counter()
    text = corpus_text()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    pad_id = tokenizer.convert_tokens_to_ids(PAD)

    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=recipe.max_positions,
        # Untied: measured on the 85 FAQ pairs, tied embeddings learned far slower (loss 1.75
        # against 0.02 after 20 epochs at the same learning rate).
        tie_word_embeddings=False,
        bos_token_id=end_id,
        eos_token_id=end_id,
        pad_token_id=pad_id,
    )
    model = LlamaForCausalLM(config)
    _pretrain(model, tokenizer(text, verbose=False)["input_ids"], end_id, recipe, progress, on_step)
    model.generation_config = GenerationConfig(
        eos_token_id=end_id, pad_token_id=pad_id, do_sample=False, max_new_tokens=128
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    info = {
        "model_id": "tailor.tiny",
        "build_version": BUILD_VERSION,
        "recipe": asdict(recipe),
        "parameters": sum(p.numel() for p in model.parameters()),
        "build_seconds": round(time.perf_counter() - started, 1),
        "note": "A test model: it learns what it is taught and knows nothing else.",
    }
    (out_dir / "tailor_tiny.json").write_text(json.dumps(info, indent=2) + "\n")


def _pretrain(model, token_ids: list[int], end_id: int, recipe: TinyRecipe, progress: bool,
              on_step: OnStep | None = None) -> None:
    """Next-token pre-training on random windows of the corpus, a fixed number of steps."""
    import torch

    from tailor.progress import progress_bar

    rng = random.Random(recipe.seed)
    ids = torch.tensor(token_ids, dtype=torch.long)
    length = recipe.pretrain_sequence_length
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.pretrain_learning_rate, weight_decay=0.01)
    warmup = max(1, recipe.pretrain_steps // 20)

    def learning_rate_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        done = (step - warmup) / max(1, recipe.pretrain_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor)
    model.train()
    with progress_bar("Building tailor.tiny (pre-training)", recipe.pretrain_steps, enabled=progress) as bar:
        for step in range(recipe.pretrain_steps):
            starts = [rng.randrange(0, len(ids) - length) for _ in range(recipe.pretrain_batch_size)]
            batch = torch.stack([ids[s : s + length] for s in starts])
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.advance(loss=loss.item())
            if on_step is not None:
                on_step(step + 1, recipe.pretrain_steps)
    model.eval()


