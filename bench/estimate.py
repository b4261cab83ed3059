"""The pre-flight memory estimate (``tailor.train.estimate``) against measured peaks on this CPU.

What it measures
    Three randomly initialised Llama shapes (about 10 M, 50 M and 150 M parameters, built with
    transformers' ``LlamaConfig``/``LlamaForCausalLM`` and saved to a temporary folder with
    ``tailor.tiny``'s tokenizer), each trained full and LoRA (r 16) for a few steps of one epoch
    through Tailor's real recipe, ``tailor.train.sft.run``, each run in its own child process.
    The child records its resident memory (RSS) after its imports, just before the recipe loads
    the model; then its peak RSS during training (``VmHWM``, reset when training starts, so the
    model's loading is left out of that figure) and over the whole run (``ru_maxrss``).
    *measured* = training peak - RSS before loading: the weights, gradients, optimizer state and
    activations the estimate accounts for, plus whatever the allocator keeps.
    *estimated* = ``estimate_run(spec).memory.peak`` for the same spec (the same data, tokenized).

    Data: chat records of random words, all about the same length, so every batch is close to the
    batch of the longest sequence the estimate assumes. It also prints each run's measured
    tokens/s against the default throughput the estimate assumes. A measurement, not a test: it
    exits 0 either way.

How to run it (about 4-5 minutes on two CPU cores; tailor.tiny's tokenizer is built once if needed)
    cd /work/main && PYTHONPATH=. python bench/estimate.py [--home DIR] [--sizes 10M,50M,150M]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name: (LlamaConfig shape, batch size, words per answer)
SHAPES = {
    "10M": ({"vocab_size": 8192, "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 8,
            "num_attention_heads": 4, "num_key_value_heads": 4}, 4, 90),
    "50M": ({"vocab_size": 16384, "hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 10,
            "num_attention_heads": 8, "num_key_value_heads": 8}, 4, 90),
    "150M": ({"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 14,
             "num_attention_heads": 12, "num_key_value_heads": 12}, 2, 45),
}
STEPS = 3
WORDS = ["river", "stone", "cloud", "lamp", "orange", "seven", "quiet", "market", "window", "paper", "garden", "engine", "silver", "winter", "bridge", "yellow", "forest", "number", "letter", "coffee"]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def child(spec_path: str) -> None:
    """One training run; prints a JSON line with its memory figures."""
    import peft  # noqa: F401  (imported before the baseline, like everything the run needs)
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from tailor.train import sft
    from tailor.train.contract import Hooks
    from tailor.train.spec import TrainSpec

    spec = TrainSpec.from_json(Path(spec_path).read_text())
    marks = {}

    def on_training_start(total_steps: int) -> None:
        marks["after_load"] = _rss_bytes()
        marks["load_peak"] = _hwm_bytes()
        with open("/proc/self/clear_refs", "w") as file:  # resets VmHWM to the current RSS
            file.write("5")

    before = _rss_bytes()
    outcome = sft.run(spec, hooks=Hooks(on_training_start=on_training_start))
    print(json.dumps({
        "before": before,
        "after_load": marks["after_load"],
        "load_peak": marks["load_peak"],
        "training_peak": _hwm_bytes(),
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "tokens_per_second": outcome.manifest["result"]["tokens_per_second"],
    }))


def build_model(name: str, folder: Path, tokenizer) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    shape, _, _ = SHAPES[name]
    config = LlamaConfig(**shape, max_position_embeddings=1024, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def write_data(path: Path, records: int, words: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w") as file:
        for index in range(records):
            answer = " ".join(rng.choice(WORDS) for _ in range(words))
            file.write(json.dumps({"messages": [{"role": "user", "content": f"Say words, round {index}."},
                                                {"role": "assistant", "content": answer}]}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child")
    parser.add_argument("--home", help="TAILOR_HOME (default: $TAILOR_HOME or ~/.tailor)")
    parser.add_argument("--sizes", default=",".join(SHAPES))
    args = parser.parse_args()
    if args.home:
        os.environ["TAILOR_HOME"] = args.home
    if args.child:
        child(args.child)
        return

    from transformers import AutoTokenizer

    from tailor.settings import get_settings
    from tailor.tiny import tokenizer_dir
    from tailor.train.estimate import default_tokens_per_second, estimate_run
    from tailor.train.spec import TrainSpec

    settings = get_settings()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(settings.models_dir))
    rows = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for name in args.sizes.split(","):
            _shape, batch_size, words = SHAPES[name]
            folder = scratch / f"llama-{name}"
            parameters = build_model(name, folder, tokenizer)
            data = scratch / f"train-{name}.jsonl"
            write_data(data, max(8, STEPS * batch_size), words, seed=len(rows))
            for method in ("full", "lora"):
                spec = TrainSpec("FINE_TUNING", str(folder), str(data), scratch / f"out-{name}-{method}",
                                 hyperparameters={"epochCount": "1", "batchSize": str(batch_size),
                                                  "tuningMethod": method},
                                 progress=False)
                estimate = estimate_run(spec, settings)
                spec_file = scratch / f"spec-{name}-{method}.json"
                spec_file.write_text(spec.to_json())
                done = subprocess.run([sys.executable, __file__, "--child", str(spec_file)],
                                      check=False, capture_output=True, text=True,
                                      env={**os.environ, "PYTHONWARNINGS": "ignore"})
                if done.returncode != 0:
                    print(done.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"the {name} {method} run failed")
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                peak = measured["training_peak"] - measured["before"]
                memory = estimate.memory
                rows.append({
                    "size": name, "parameters": parameters, "method": method,
                    "batch": f"{batch_size} x {estimate.longest_sequence}",
                    "estimated": memory.peak, "measured": peak, "ratio": peak / memory.peak,
                    "whole_run": measured["ru_maxrss"] - measured["before"],
                    "parts": (memory.weights, memory.gradients + memory.optimizer, memory.activations),
                    "tokens_per_second": measured["tokens_per_second"],
                    "default_tokens_per_second": default_tokens_per_second(estimate.shape),
                })
                print(f"{name} {method}: estimated {memory.peak / 2**20:.0f} MiB, measured {peak / 2**20:.0f} "
                      f"MiB ({peak / memory.peak:.2f}x)", flush=True)
    print()
    print("| size | parameters | method | batch | estimated MiB | measured MiB | measured / estimated "
          "| whole run (with loading) MiB | estimate: weights / grads+AdamW / activations MiB "
          "| tokens/s measured | tokens/s default |")
    print("|---|---:|---|---|---:|---:|---:|---:|---|---:|---:|")
    mib = 2**20
    for row in rows:
        parts = " / ".join(f"{part / mib:.0f}" for part in row["parts"])
        print(f"| {row['size']} | {row['parameters'] / 1e6:.1f} M | {row['method']} | {row['batch']} "
              f"| {row['estimated'] / mib:.0f} | {row['measured'] / mib:.0f} | {row['ratio']:.2f} "
              f"| {row['whole_run'] / mib:.0f} | {parts} | {row['tokens_per_second']:,.0f} "
              f"| {row['default_tokens_per_second']:,.0f} |")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
