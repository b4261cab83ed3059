"""Serving by vLLM against Tailor's engine, in one run, through the clients the API uses.

    python bench/vllm_serving.py [--concurrency 16 64] [--max-tokens 64] [--model tailor.tiny]
                                 [--vllm-python .venv-vllm/bin/python] [--out results.json]

Both backends answer the same requests through their API-side clients: ``EngineClient`` (Tailor's
engine process, continuous batching over transformers) and ``VllmClient`` (a vLLM OpenAI server
process started from vLLM's own environment; ``tailor/serve/vllm_backend.py``). For each backend:

1. **Throughput.** For each ``--concurrency`` C: C chat requests (Tailor FAQ questions, greedy,
   ``--max-tokens``) sent at once, after one warm-up round; wall time, requests/s, generated
   tokens/s (the backends' own counts), latency and time-to-first-token p50/p95.
2. **LoRA.** Two adapters trained here (a few seconds each, or ``--adapters A B`` folders). Cold:
   the first ``load`` of an adapter the backend has not seen (vLLM: /v1/load_lora_adapter).
   Warm switch: the median latency of one request alternating between the two adapters minus one
   repeating the same adapter. Evicting switch (vLLM, room for one adapter): what a request costs
   when its adapter was unloaded to make room (unload + load + answer), minus the warm request.

The tiny model is what runs on a CPU; on a GPU pass a real base (``--model`` a folder or hub id)
with ``--vllm-arg --dtype --vllm-arg bfloat16``. Prints one table; JSON with ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import faq_questions, percentile, train_adapters  # noqa: E402  (bench/serving.py)

from tailor.serve.client import EngineClient  # noqa: E402
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, Target  # noqa: E402
from tailor.serve.vllm_backend import VllmClient  # noqa: E402
from tailor.settings import Settings  # noqa: E402


async def timed(client, target: Target, request: ChatRequest) -> tuple[float, Completion]:
    started = time.perf_counter()
    answer = await client.complete(target, request, timeout_s=600)
    return (time.perf_counter() - started) * 1000, answer


async def throughput(client, target: Target, questions: list[str], system: str, concurrency: int,
                     max_tokens: int) -> dict:
    requests = [ChatRequest((Message("system", system), Message("user", questions[i % len(questions)])),
                            Sampling(max_tokens=max_tokens)) for i in range(concurrency)]
    await asyncio.gather(*(timed(client, target, r) for r in requests))  # warm-up: compile, caches
    started = time.perf_counter()
    results = await asyncio.gather(*(timed(client, target, r) for r in requests))
    wall = time.perf_counter() - started
    latencies = [ms for ms, _ in results]
    first = [answer.first_token_ms for _, answer in results]
    tokens = sum(answer.output_tokens for _, answer in results)
    return {"concurrency": concurrency, "wall_s": round(wall, 3), "requests_per_s": round(concurrency / wall, 2),
            "tokens_per_s": round(tokens / wall, 1), "output_tokens": tokens,
            "latency_p50_ms": round(percentile(latencies, 0.5)), "latency_p95_ms": round(percentile(latencies, 0.95)),
            "first_token_p50_ms": round(percentile(first, 0.5)), "texts": [a.text for _, a in results]}


async def lora(client, base: str, adapters: list[str], rounds: int = 6) -> dict:
    a, b = (Target(base, path) for path in adapters)
    request = ChatRequest((Message("user", "Code 3?"),), Sampling(max_tokens=12))
    cold = []
    for target in (a, b):
        started = time.perf_counter()
        await client.load(target)
        cold.append((time.perf_counter() - started) * 1000)
    same, switching = [], []
    for _ in range(rounds):
        for target, bucket in ((a, same), (a, same), (b, switching), (a, switching)):
            bucket.append((await timed(client, target, request))[0])
    return {"cold_load_ms": [round(x, 1) for x in cold], "same_adapter_ms": round(statistics.median(same), 1),
            "warm_switch_ms": round(statistics.median(switching) - statistics.median(same), 1)}


async def evicting_switch(client, base: str, adapters: list[str], rounds: int = 4) -> float:
    """With room for one adapter: alternate, so every request unloads one and loads the other."""
    a, b = (Target(base, path) for path in adapters)
    request = ChatRequest((Message("user", "Code 3?"),), Sampling(max_tokens=12))
    await client.complete(a, request)
    same = [(await timed(client, a, request))[0] for _ in range(rounds)]
    switching = [(await timed(client, target, request))[0] for _ in range(rounds) for target in (b, a)]
    return round(statistics.median(switching) - statistics.median(same), 1)


async def measure(name: str, client, args, questions, system, adapters) -> dict:
    target = Target(args.model)
    started = time.perf_counter()
    await client.load(target)
    result = {"backend": name, "start_s": round(time.perf_counter() - started, 1), "throughput": []}
    for concurrency in args.concurrency:
        result["throughput"].append(await throughput(client, target, questions, system, concurrency,
                                                     args.max_tokens))
        print(f"  {name} c={concurrency}: {result['throughput'][-1]['tokens_per_s']} tok/s", flush=True)
    if adapters:
        result["lora"] = await lora(client, args.model, adapters)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", default="tailor.tiny")
    parser.add_argument("--adapters", nargs=2, default=None, help="two LoRA adapter folders on --model")
    parser.add_argument("--no-lora", action="store_true")
    parser.add_argument("--vllm-python", default="")
    parser.add_argument("--vllm-arg", action="append", default=None,
                        help="extra `vllm serve` argument (repeat); default: --dtype float32 --max-model-len 1024")
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--engine-threads", type=int, default=None,
                        help="torch threads of Tailor's engine process (OMP_NUM_THREADS); vLLM on a CPU binds its "
                             "compute to all cores but one, which it keeps for its API front end")
    parser.add_argument("--home", default=None, help="TAILOR_HOME (default: a temporary one)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tailor-vllm-bench-") as scratch:
        home = Path(args.home or scratch)
        kept = os.environ.get("TAILOR_TEST_MODELS")  # a built tiny model to link, as the tests do
        if kept and not (home / "models").exists():
            (home / "models").mkdir(parents=True)
            for entry in Path(kept).iterdir():
                if not entry.name.startswith("."):
                    os.symlink(entry, home / "models" / entry.name)
        # The engine process reads its settings from the environment: the same batch bound as vLLM's.
        os.environ["TAILOR_ENGINE_MAX_BATCH"] = str(max(args.concurrency))
        vllm_args = args.vllm_arg if args.vllm_arg is not None else ["--dtype", "float32", "--max-model-len", "1024"]
        settings = Settings(home=home, vllm_python=args.vllm_python, vllm_extra_args=vllm_args,
                            vllm_max_adapters=2, engine_max_batch=max(args.concurrency))
        system, questions = faq_questions(max(args.concurrency))
        adapters = None if args.no_lora else (args.adapters or [str(p) for p in train_adapters(settings, home)])
        results = []

        async def run_all():
            if not args.skip_engine:
                saved = os.environ.get("OMP_NUM_THREADS")
                if args.engine_threads:  # read by the engine process when it starts, not by vLLM's
                    os.environ["OMP_NUM_THREADS"] = str(args.engine_threads)
                engine = EngineClient(settings)
                try:
                    results.append(await measure("tailor-engine", engine, args, questions, system, adapters))
                finally:
                    engine.close()
                    os.environ.pop("OMP_NUM_THREADS", None)
                    if saved is not None:
                        os.environ["OMP_NUM_THREADS"] = saved
            vllm = VllmClient(settings)
            try:
                results.append(await measure("vllm", vllm, args, questions, system, adapters))
            finally:
                vllm.close()
            if adapters:
                tight = VllmClient(settings.model_copy(update={"vllm_max_adapters": 1}))
                try:
                    results[-1]["lora"]["evicting_switch_ms"] = await evicting_switch(tight, args.model, adapters)
                finally:
                    tight.close()

        asyncio.run(run_all())

    if len(results) == 2:  # greedy on the same weights: how many answers are the same text
        for engine_row, vllm_row in zip(results[0]["throughput"], results[1]["throughput"]):
            same = sum(x == y for x, y in zip(engine_row["texts"], vllm_row["texts"]))
            vllm_row["same_text_as_engine"] = f"{same}/{len(vllm_row['texts'])}"
    for result in results:
        for row in result["throughput"]:
            row.pop("texts")

    print(f"\nmodel {args.model}, greedy, max_tokens {args.max_tokens}")
    print(f"{'backend':<14} {'conc':>4} {'wall s':>7} {'req/s':>6} {'tok/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'TTFT p50':>8} {'same text':>9}")
    for result in results:
        for row in result["throughput"]:
            print(f"{result['backend']:<14} {row['concurrency']:>4} {row['wall_s']:>7} {row['requests_per_s']:>6} "
                  f"{row['tokens_per_s']:>7} {row['latency_p50_ms']:>7} {row['latency_p95_ms']:>7} "
                  f"{row['first_token_p50_ms']:>8} {row.get('same_text_as_engine', ''):>9}")
    for result in results:
        print(f"{result['backend']}: started in {result['start_s']} s; LoRA {json.dumps(result.get('lora'))}")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "max_tokens": args.max_tokens,
                                              "results": results}, indent=2))


if __name__ == "__main__":
    main()
