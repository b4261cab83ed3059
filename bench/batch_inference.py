"""Batch inference throughput: a model invocation job's engine path against sequential
InvokeModel-style calls on the same records.

    python bench/batch_inference.py [--records 64] [--max-tokens 32]

Everything runs in this process on the built-in tiny model, in a scratch TAILOR_HOME:

1. **Sequential** (the baseline a client without batch inference has): each record's
   ``modelInput`` parsed as InvokeModel parses it (``tailor.wire.invoke``), answered by Tailor's
   engine, turned into the native response body — one record at a time, each waiting for its
   answer before the next is sent, as a loop of ``invoke_model`` calls would. The engine is loaded
   and warmed first, so this is the best case for the baseline.
2. **Batch job**: the same records as a CreateModelInvocationJob (``services.batch_inference``
   checks them and queues the job), run by the worker's own ``run_job`` — which starts its engine,
   submits the records many at a time so the engine's continuous batching decodes them together,
   writes ``{recordId, modelInput, modelOutput}`` lines and ``manifest.json.out``. Its wall time
   includes loading the model, so the ratio is conservative.

Both paths are greedy, so their answers must be the same, record by record (checked). Prints
records/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path


def records(count: int, max_tokens: int) -> list[dict]:
    from importlib import resources

    from tailor import assets

    items = json.loads(resources.files(assets).joinpath("tailor-faq.json").read_text())
    items = items if isinstance(items, list) else items.get("items", [])
    questions = [item.get("question") or item.get("sentence1") for item in items]
    questions = (questions * (count // len(questions) + 1))[:count]
    return [{"recordId": f"REC{i:08d}", "modelInput": {"messages": [{"role": "user", "content": q}],
                                                       "max_tokens": max_tokens}}
            for i, q in enumerate(questions)]


def sequential(settings, lines: list[dict]) -> tuple[float, list[str]]:
    """One record at a time through parse -> engine -> native body; (seconds, answers)."""
    from tailor.serve.engine import Engine
    from tailor.serve.protocol import Completion, Target
    from tailor.wire import invoke

    engine = Engine(settings, max_models=1)
    target = Target("tailor.tiny")
    try:
        engine.load(target)

        def one(model_input: dict) -> str:
            chat = invoke.parse_invoke_body("openai", json.dumps(model_input), default_max_tokens=512)
            done, result = threading.Event(), []

            def emit(event):
                if isinstance(event, Completion) or not hasattr(event, "text"):
                    result.append(event)
                    done.set()
            engine.submit(target, chat, emit)
            done.wait()
            body = invoke.invoke_response("openai", result[0], model_id="tailor.tiny", request_id="bench")
            return body["choices"][0]["message"]["content"]

        one(lines[0]["modelInput"])  # warm-up
        started = time.perf_counter()
        answers = [one(line["modelInput"]) for line in lines]
        return time.perf_counter() - started, answers
    finally:
        engine.close()


def batch_job(settings, lines: list[dict]) -> tuple[float, list[str], dict]:
    """The same records as a model invocation job run by its worker function; (seconds, answers, manifest)."""
    from tailor.jobs.ending import Stop
    from tailor.jobs.invocation import run_job
    from tailor.services.batch_inference import BedrockBatchRequest, create_bedrock_job
    from tailor.services.buckets import prepare_upload
    from tailor.store.db import open_store

    store = open_store(settings)
    uri = "s3://bench-in/records.jsonl"
    prepare_upload(store, settings, "bench", uri)
    path = settings.home / "buckets" / "bench-in" / "records.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    arn = create_bedrock_job(store, settings, "bench", BedrockBatchRequest(
        name="bench", role_arn="arn:aws:iam::000000000000:role/bench", model_id="tailor.tiny", input_uri=uri,
        output_uri="s3://bench-in/out/", default_max_tokens=512))
    job_id = arn.rsplit("/", 1)[-1]
    started = time.perf_counter()
    status = run_job(store, settings, job_id, Stop())
    seconds = time.perf_counter() - started
    if status != "Completed":
        raise SystemExit(f"the batch job ended {status}")
    folder = settings.home / "buckets" / "bench-in" / "out" / job_id
    output = [json.loads(line) for line in (folder / "records.jsonl.out").read_text().splitlines()]
    answers = [line["modelOutput"]["choices"][0]["message"]["content"] for line in output]
    return seconds, answers, json.loads((folder / "manifest.json.out").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tailor-bench-batch-") as scratch:
        home = Path(scratch)
        shared = Path(os.environ.get("TAILOR_HOME", Path.home() / ".tailor")) / "models"
        if shared.is_dir():  # reuse the built tiny model instead of building it again
            os.symlink(shared, home / "models")
        os.environ["TAILOR_HOME"] = str(home)
        from tailor.settings import Settings

        settings = Settings(home=home)
        lines = records(args.records, args.max_tokens)
        sequential_seconds, sequential_answers = sequential(settings, lines)
        batch_seconds, batch_answers, manifest = batch_job(settings, lines)

    same = sum(a == b for a, b in zip(batch_answers, sequential_answers))
    print(f"batch inference, tailor.tiny, {args.records} records, max_tokens {args.max_tokens}, greedy")
    print(f"{'path':<34}{'seconds':>9}{'records/s':>11}")
    print(f"{'sequential InvokeModel-style':<34}{sequential_seconds:>9.2f}{args.records / sequential_seconds:>11.1f}")
    print(f"{'batch job (worker, incl. load)':<34}{batch_seconds:>9.2f}{args.records / batch_seconds:>11.1f}")
    print(f"speed-up: {sequential_seconds / batch_seconds:.1f}x; same answers: {same}/{args.records}; "
          f"manifest: {manifest['successRecordCount']} ok, {manifest['errorRecordCount']} errors, "
          f"{manifest['outputTokenCount']} output tokens")
    if same != args.records:
        raise SystemExit("the batch job's answers differ from the sequential ones")


if __name__ == "__main__":
    main()
