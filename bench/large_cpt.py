"""A continued-pre-training file bigger than a gigabyte, in bounded memory: peak RSS against file size.

Steps, each measured in a fresh Python process (its own ``resource.getrusage`` peak RSS, and its
RSS just before the work, after imports and the tokenizer, to show the growth):

1. generate ``--size-gb`` of ``{"input": ...}`` JSONL under ``--dir``: documents of 2,000-12,000
   characters (under the 4,096 tokens a record the ``amazon.titan-text`` family allows, the one
   family with no bound on the record count, so the one a multi-GB file can be for) made of
   paragraphs of the shipped Python-reference corpus, drawn with a fixed seed; kept between runs
   when it is already there (``--regenerate`` to write it again);
2. validate it (``tailor.data.validate.validate``, streaming, as that family's training data;
   with no tokenizer unless ``--validate-with-tokenizer``, so token counts are the validator's
   estimate: counting with the tokenizer tokenizes every record once more);
3. build the token cache (``tailor.data.token_cache.cached_text_examples``, ``tailor.tiny``'s
   tokenizer, windows of ``--window`` tokens) into a fresh cache folder: tokens/s of the build;
4. reopen it (a second run: no tokenizing) and read ``--read`` examples the way the loop would:
   indices sorted by ``lengths`` into batches of ``--batch-size``, batches in a seeded random order,
   each read with ``take``;
5. run the continued-pre-training recipe itself on the file (``tailor.train.cpt.run``, the titan
   family's id aliased to ``tailor.tiny``): validation with the tokenizer, its own token cache, the
   model, ``--train-steps`` optimizer steps; its peak RSS is the whole run's.

It prints one table and exits 0: a measurement, not a test. ``--out-json FILE`` keeps the numbers.

    PYTHONPATH=. python bench/large_cpt.py                     # ~1 GB in /tmp; minutes on 2 cores
    PYTHONPATH=. python bench/large_cpt.py --size-gb 0.1 --dir /tmp/cpt-small   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

GIB = 1 << 30


FAMILY = "amazon.titan-text"
MAX_CHARACTERS = 12_000  # the validator estimates 3 characters a token: 4,000 of the 4,096 allowed


def generate(path: Path, size_bytes: int, seed: int = 0) -> None:
    from tailor.tiny import corpus_text

    paragraphs = [p for p in corpus_text().split("\n\n") if p.strip()]
    rng = random.Random(seed)
    scratch = path.with_name(path.name + ".partial")
    written = 0
    with open(scratch, "w", encoding="utf-8") as out:
        while written < size_bytes:
            target, parts, length = rng.randint(2_000, MAX_CHARACTERS), [], 0
            while length < target:
                paragraph = paragraphs[rng.randrange(len(paragraphs))][:MAX_CHARACTERS]
                if parts and length + len(paragraph) > MAX_CHARACTERS:
                    break
                parts.append(paragraph)
                length += len(paragraph) + 2
            line = json.dumps({"input": "\n\n".join(parts)}) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
    os.replace(scratch, path)


# ---------------------------------------------------------------------------------------------
# The steps that run in their own process (``python bench/large_cpt.py --step NAME ...``).


def _rss_now_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / (1 << 20)


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _rss_kinds_mib() -> dict:
    """RSS now, split: anonymous memory (the process's own) and file-backed pages (the memory-mapped
    cache, libraries): those are page cache the kernel takes back under pressure."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {name: int(status[key].split()[0]) / 1024 for name, key in (("anon_mib", "RssAnon"), ("file_mib", "RssFile"))}


def _tokenizer(home: Path):
    from transformers import AutoTokenizer

    from tailor.tiny import tokenizer_dir

    return AutoTokenizer.from_pretrained(tokenizer_dir(home / "models"))


def step_validate(args) -> dict:
    from tailor.catalog import (
        FAMILIES,
        FOUNDATION_MODELS,
        CustomizationType,
        ResolvedModel,
    )
    from tailor.data.validate import validate
    from tailor.settings import Settings

    settings = Settings(home=args.home)
    family = FAMILIES[FAMILY]  # its rules, tailor.tiny's tokenizer (as a model aliased to it)
    model = ResolvedModel(model_id="tailor.tiny", family=family, weights=FOUNDATION_MODELS["tailor.tiny"].weights,
                          customization_types=tuple(family.formats))
    tokenizer = _tokenizer(args.home) if args.validate_with_tokenizer else None
    before = _rss_now_mib()
    started = time.monotonic()
    report = validate(str(args.file), CustomizationType.CONTINUED_PRE_TRAINING, model, tokenizer=tokenizer,
                      settings=settings)
    return {"seconds": time.monotonic() - started, "rss_before_mib": before, "peak_rss_mib": _peak_rss_mib(),
            "records": report.record_count, "ok": report.ok, "problems": len(report.problems),
            "report": report.render()[:2000], **_rss_kinds_mib()}


def step_build(args) -> dict:
    from tailor.data.token_cache import cached_text_examples
    from tailor.settings import Settings

    tokenizer = _tokenizer(args.home)
    import datasets  # noqa: F401 - imported before the baseline, as a run has it loaded
    import pyarrow  # noqa: F401

    before = _rss_now_mib()
    started = time.monotonic()
    cache = cached_text_examples(str(args.file), tokenizer, args.window, Settings(home=args.home),
                                 cache_dir=args.cache_dir)
    seconds = time.monotonic() - started
    return {"seconds": seconds, "build_seconds": cache.meta["build_seconds"], "rss_before_mib": before,
            "peak_rss_mib": _peak_rss_mib(), "examples": len(cache), "tokens": cache.token_count,
            "cache_bytes": cache.meta["data_bytes"], "path": str(cache.path), **_rss_kinds_mib()}


def step_read(args) -> dict:
    import numpy as np

    from tailor.data.token_cache import cached_text_examples
    from tailor.settings import Settings

    tokenizer = _tokenizer(args.home)
    import datasets  # noqa: F401
    import pyarrow  # noqa: F401

    before = _rss_now_mib()
    started = time.monotonic()
    cache = cached_text_examples(str(args.file), tokenizer, args.window, Settings(home=args.home),
                                 cache_dir=args.cache_dir)
    reopen_seconds = time.monotonic() - started
    # Length-grouped batches, as the loop makes them: sort by length, cut, shuffle the batches.
    order = np.argsort(cache.lengths, kind="stable")
    batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    random.Random(0).shuffle(batches)
    started = time.monotonic()
    read = tokens = 0
    for batch in batches:
        if read >= args.read:
            break
        examples = cache.take(batch.tolist())
        assert [len(e.input_ids) for e in examples] == cache.lengths[batch].tolist()
        read += len(examples)
        tokens += sum(len(e.input_ids) for e in examples)
    seconds = time.monotonic() - started
    return {"reopen_seconds": reopen_seconds, "read_examples": read, "read_tokens": tokens,
            "read_seconds": seconds, "rss_before_mib": before, "peak_rss_mib": _peak_rss_mib(), **_rss_kinds_mib()}


def step_train(args) -> dict:
    """The whole recipe, as a job runs it (``tailor.train.cpt.run``): validation with the tokenizer,
    the token cache built into the run's home, the model, then ``--train-steps`` optimizer steps
    (a stop request ends it there: training all 258 M tokens would take hours on a CPU)."""
    from tailor.settings import Settings
    from tailor.train import cpt
    from tailor.train.contract import Hooks, StopRequested
    from tailor.train.spec import TrainSpec

    model_id = "amazon.titan-text-express-v1:0:8k"  # the family's rules, tailor.tiny's weights
    settings = Settings(home=args.home, model_aliases={model_id: "tailor.tiny"}, checkpoint_steps=0)
    shutil.rmtree(args.home / "cache", ignore_errors=True)
    output = args.home / "train-run"
    shutil.rmtree(output, ignore_errors=True)
    steps: list[float] = []
    before = _rss_now_mib()
    started = time.monotonic()
    try:
        cpt.run(TrainSpec("CONTINUED_PRE_TRAINING", model_id, str(args.file), output, progress=False,
                          hyperparameters={"epochCount": "1", "batchSize": str(args.batch_size)}),
                settings, Hooks(on_step=lambda step, epoch, loss: steps.append(time.monotonic()),
                                should_stop=lambda: len(steps) >= args.train_steps))
    except StopRequested:
        pass
    return {"seconds": time.monotonic() - started, "rss_before_mib": before, "peak_rss_mib": _peak_rss_mib(),
            "steps": len(steps), "step_seconds": (steps[-1] - steps[0]) / max(1, len(steps) - 1) if steps else None,
            **_rss_kinds_mib()}


STEPS = {"validate": step_validate, "build": step_build, "read": step_read, "train": step_train}


def run_step(name: str, args) -> dict:
    command = [sys.executable, __file__, "--step", name, "--file", str(args.file), "--home", str(args.home),
               "--cache-dir", str(args.cache_dir), "--window", str(args.window), "--read", str(args.read),
               "--batch-size", str(args.batch_size), "--train-steps", str(args.train_steps)]
    if args.validate_with_tokenizer:
        command.append("--validate-with-tokenizer")
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(command, capture_output=True, text=True, env=environment)
    if result.returncode != 0:
        sys.exit(f"step {name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp"), help="where the file and cache go (default /tmp)")
    parser.add_argument("--size-gb", type=float, default=1.0, help="file size in GiB (default 1)")
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--read", type=int, default=4000, help="examples read in step 4 (default 4000)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--validate-with-tokenizer", action="store_true")
    parser.add_argument("--keep-cache", action="store_true", help="reuse the cache of an earlier run")
    parser.add_argument("--train-steps", type=int, default=20, help="step 5: the CPT recipe on the file, this many "
                        "optimizer steps (0: skip)")
    parser.add_argument("--out-json", type=Path)
    # Internal: one step in this process.
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step](args)))
        return 0

    root = args.dir / "tailor-large-cpt"
    root.mkdir(parents=True, exist_ok=True)
    args.file = root / f"cpt-{args.size_gb:g}gib.jsonl"
    args.home = root / "home"
    args.cache_dir = root / "token-cache"
    if args.regenerate or not args.file.exists():
        started = time.monotonic()
        generate(args.file, int(args.size_gb * GIB))
        print(f"generated {args.file} in {time.monotonic() - started:.0f} s", flush=True)
    if not args.keep_cache:
        shutil.rmtree(args.cache_dir, ignore_errors=True)
    size_mib = args.file.stat().st_size / (1 << 20)

    validated = run_step("validate", args)
    print(f"validated: {validated}", flush=True)
    if not validated["ok"]:
        sys.exit(f"the generated file is not valid {FAMILY} training data:\n{validated['report']}")
    built = run_step("build", args)
    print(f"built: {built}", flush=True)
    read = run_step("read", args)
    print(f"read: {read}", flush=True)
    trained = run_step("train", args) if args.train_steps else None
    print(f"trained: {trained}", flush=True)

    def row(step: str, result: dict, seconds: float, what: str) -> str:
        growth = result["peak_rss_mib"] - result["rss_before_mib"]
        return (f"| {step} | {seconds:,.1f} | {result['rss_before_mib']:,.0f} | {result['peak_rss_mib']:,.0f} | "
                f"{growth:,.0f} | {100 * result['peak_rss_mib'] / size_mib:.1f} % | "
                f"{result['anon_mib']:,.0f} / {result['file_mib']:,.0f} | {what} |")

    print()
    print(f"file: {args.file} ({size_mib:,.0f} MiB, {validated['records']:,} records); cache: "
          f"{built['cache_bytes'] / (1 << 20):,.0f} MiB, {built['examples']:,} examples of <= {args.window} tokens, "
          f"{built['tokens']:,} tokens")
    print()
    print("| step | seconds | RSS before (MiB) | peak RSS (MiB) | growth (MiB) | peak / file size "
          "| RSS at the end: anonymous / file-backed (MiB) | rate |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    print(row("validate (streaming)", validated, validated["seconds"],
              f"{size_mib / validated['seconds']:,.1f} MiB/s"))
    print(row("build token cache", built, built["seconds"],
              f"{built['tokens'] / built['build_seconds']:,.0f} tokens/s, {size_mib / built['build_seconds']:,.2f} MiB/s"))
    print(row(f"reopen + read {read['read_examples']:,} examples (length-grouped)", read,
              read["reopen_seconds"] + read["read_seconds"],
              f"reopen {read['reopen_seconds']:.2f} s; {read['read_examples'] / read['read_seconds']:,.0f} examples/s"))
    if trained:
        print(row(f"the CPT recipe: validate, cache, load, {trained['steps']} steps", trained, trained["seconds"],
                  f"{trained['step_seconds']:.2f} s a step (batch {args.batch_size} x {args.window} tokens)"))
    if args.out_json:
        args.out_json.write_text(json.dumps({"file_mib": size_mib, "validate": validated, "build": built,
                                             "read": read, "train": trained}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
