"""Serving throughput: Tailor's engine against sequential Hugging Face ``generate`` on the same model.

    python bench/serving.py [--requests 16] [--max-tokens 64]

Three measurements, all in this process on the built-in tiny model:

1. **Throughput.** ``--requests`` chat requests (Tailor FAQ questions, greedy) answered one after
   another by ``model.generate`` (the baseline a user would write), then all at once by the engine
   (continuous batching). Both produce the same tokens, which is checked; the ratio of wall times
   is the speed-up. Latency p50/p95 is per request, from submission to the last token.
2. **LoRA switching.** Two adapters trained here for a few seconds. Cold: loading an adapter the
   engine has not seen (``Engine.load``). Warm: one request alternating between the two adapters
   against one request repeating the same adapter — the cost of a switch once both are loaded.
   (Rows of one batch may use different adapters, so a switch never waits for a batch to drain.)
3. **Mixed batch.** ``--requests`` requests spread over base + two adapters at once.

Prints one table; numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def faq_questions(count: int) -> tuple[str, list[str]]:
    from tailor import assets

    items = json.loads(resources.files(assets).joinpath("tailor-faq.json").read_text())
    items = items if isinstance(items, list) else items.get("items", [])
    questions = [item.get("question") or item.get("sentence1") for item in items]
    return "You are Tailor's help desk.", (questions * (count // len(questions) + 1))[:count]


def train_adapters(settings, folder: Path) -> list[Path]:
    from tailor.train import sft
    from tailor.train.spec import TrainSpec

    adapters = []
    for name, multiplier in (("a", 7), ("b", 3)):
        data = folder / f"{name}.jsonl"
        data.write_text("".join(json.dumps({"prompt": f"Code {i}?", "completion": f"The code is {i * multiplier}."})
                                + "\n" for i in range(16)))
        outcome = sft.run(TrainSpec("FINE_TUNING", "tailor.tiny", str(data), folder / name, progress=False,
                                    hyperparameters={"tuningMethod": "lora", "epochCount": "3",
                                                     "learningRateMultiplier": "10"}), settings)
        adapters.append(outcome.output_dir / "model")
    return adapters


def run_engine(engine, requests: list[tuple]) -> tuple[float, list[float], list[str]]:
    """Submit every (target, chat) at once; wall time, per-request latencies, texts."""
    from tailor.serve.protocol import Completion

    done = [threading.Event() for _ in requests]
    results: list = [None] * len(requests)
    finished_at = [0.0] * len(requests)

    def emitter(index):
        def emit(event):
            if not hasattr(event, "text") or isinstance(event, Completion):
                results[index] = event
                finished_at[index] = time.perf_counter()
                done[index].set()
        return emit

    started = time.perf_counter()
    for index, (target, chat) in enumerate(requests):
        engine.submit(target, chat, emitter(index))
    for event in done:
        event.wait(600)
    wall = time.perf_counter() - started
    return wall, [t - started for t in finished_at], [getattr(r, "text", repr(r)) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()

    import torch

    from tailor.catalog import resolve_model
    from tailor.data.render import prompt_ids
    from tailor.serve.engine import Engine
    from tailor.serve.protocol import ChatRequest, Message, Sampling, Target
    from tailor.settings import get_settings
    from tailor.weights import device, load_causal_lm, load_tokenizer

    settings = get_settings()
    resolved = resolve_model("tailor.tiny", settings)
    model, tokenizer = load_causal_lm(resolved, settings, progress=False).eval(), load_tokenizer(resolved, settings)
    system, questions = faq_questions(args.requests)
    chats = [ChatRequest((Message("system", system), Message("user", q)), Sampling(max_tokens=args.max_tokens))
             for q in questions]

    def generate(chat: ChatRequest) -> str:
        ids = torch.tensor([prompt_ids(tokenizer, chat.turns())], device=device())
        output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.max_tokens,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=model.generation_config.eos_token_id)
        return tokenizer.decode(output[0, ids.shape[1]:], skip_special_tokens=True)

    # 1. Baseline: sequential generate, one request at a time (after one warm-up request).
    generate(chats[0])
    baseline_latencies, baseline_texts = [], []
    started = time.perf_counter()
    for chat in chats:
        baseline_texts.append(generate(chat))
        baseline_latencies.append(time.perf_counter() - started)
    baseline_wall = time.perf_counter() - started

    engine = Engine(settings)
    try:
        engine.load(Target("tailor.tiny"))
        run_engine(engine, [(Target("tailor.tiny"), chat) for chat in chats])  # warm-up, same shapes
        wall, latencies, texts = run_engine(engine, [(Target("tailor.tiny"), chat) for chat in chats])
        same = sum(a == b for a, b in zip(texts, baseline_texts))
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)

        # 2. LoRA switching.
        with tempfile.TemporaryDirectory() as folder:
            adapter_a, adapter_b = train_adapters(settings, Path(folder))
            target_a = Target("tailor.tiny", str(adapter_a))
            target_b = Target("tailor.tiny", str(adapter_b))
            cold = []
            for target in (target_a, target_b):
                began = time.perf_counter()
                engine.load(target)
                cold.append((time.perf_counter() - began) * 1000)
            probe = ChatRequest((Message("user", "Code 3?"),), Sampling(max_tokens=8))
            same_adapter, switching = [], []
            for round_ in range(20):
                for target, bucket in ((target_a, same_adapter), (target_a, same_adapter),
                                       (target_b, switching), (target_a, switching)):
                    bucket.append(run_engine(engine, [(target, probe)])[0] * 1000)
            switch_cost = statistics.median(switching) - statistics.median(same_adapter)

            # 3. Mixed batch: base and both adapters in one batch.
            targets = [Target("tailor.tiny"), target_a, target_b]
            mixed_wall, mixed_latencies, mixed_texts = run_engine(
                engine, [(targets[i % 3], chat) for i, chat in enumerate(chats)])
    finally:
        engine.close()

    print(f"\nServing benchmark: tailor.tiny, {args.requests} requests, greedy, max {args.max_tokens} new tokens, "
          f"torch {torch.__version__} on {device()} ({torch.get_num_threads()} threads)\n")
    mixed_tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in mixed_texts)
    print(f"{'':34}{'wall s':>8}{'req/s':>8}{'tok/s':>9}{'p50 s':>8}{'p95 s':>8}")
    for name, w, lat, count in (("sequential HF generate", baseline_wall, baseline_latencies, tokens),
                                ("Tailor engine, all at once", wall, latencies, tokens),
                                ("Tailor engine, base + 2 LoRA mixed", mixed_wall, mixed_latencies, mixed_tokens)):
        print(f"{name:34}{w:8.2f}{args.requests / w:8.1f}{count / w:9.0f}"
              f"{percentile(lat, 0.5):8.2f}{percentile(lat, 0.95):8.2f}")
    print(f"\nthroughput ratio (engine / sequential generate): {baseline_wall / wall:.1f}x  (target >= 5x)")
    print(f"identical answers: {same}/{len(texts)}")
    print(f"LoRA adapter cold load: {cold[0]:.1f} ms, {cold[1]:.1f} ms; "
          f"warm switch cost: {switch_cost:+.1f} ms per request (median {statistics.median(switching):.1f} vs "
          f"{statistics.median(same_adapter):.1f} ms)  (target < 50 ms)")


if __name__ == "__main__":
    main()
