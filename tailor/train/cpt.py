"""Continued pre-training (CONTINUED_PRE_TRAINING): more next-token training on unlabeled text.

Each ``{"input": ...}`` record is tokenized and cut into windows of the model's context length;
every token is a target. The training file is tokenized once into an on-disk cache the loop reads
batch by batch, so files bigger than memory train (validation files are read as records). The run (loop, validation, early stopping, outputs) is
``train/supervised.py``'s, exactly as for fine-tuning.
"""

from __future__ import annotations

from tailor.data.render import text_examples
from tailor.settings import Settings, get_settings
from tailor.train.contract import Hooks, TrainOutcome
from tailor.train.process import main
from tailor.train.spec import TrainSpec
from tailor.train.supervised import run_recipe

# Longer windows cost memory quadratically in attention; 1,024 tokens keeps a CPU run light
# while covering a typical document paragraph.
MAX_WINDOW = 1024


def window(tokenizer) -> int:
    return min(MAX_WINDOW, tokenizer.model_max_length if tokenizer.model_max_length < 1e9 else MAX_WINDOW)


def examples_for(records, tokenizer):
    return [example for record in records for example in text_examples(tokenizer, record.input, window(tokenizer))]


def cached_examples(uri: str, tokenizer, settings: Settings, sha256: str):
    """The training file's examples from its on-disk token cache (built on first use): a 10 GB
    file trains in bounded memory (``data/token_cache.py``; docs/performance.md)."""
    from tailor.data.token_cache import cached_text_examples

    return cached_text_examples(uri, tokenizer, window(tokenizer), settings, file_sha256=sha256)


def run(spec: TrainSpec, settings: Settings | None = None,
        hooks: Hooks | None = None) -> TrainOutcome:
    return run_recipe(spec, settings or get_settings(), examples_for, hooks, cached=cached_examples)


if __name__ == "__main__":
    raise SystemExit(main(run))
