"""The token cache: exactly ``text_examples``, tokenized once, whole or not at all, in bounded memory."""

from __future__ import annotations

import json
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tailor import storage, tiny
from tailor.data import token_cache
from tailor.data.render import IGNORE_INDEX, Example, text_examples
from tailor.data.token_cache import cached_text_examples
from tailor.errors import InvalidInput

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny.train_tokenizer(tiny.corpus_text(), tiny.RECIPE)


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    return [p for p in tiny.corpus_text().split("\n\n") if p.strip()]


def write_text_file(path: Path, paragraphs: list[str], size: int, record_chars: tuple[int, int], seed: int = 0) -> Path:
    """``{"input": ...}`` records of random paragraphs, ``record_chars`` long, until ``size`` bytes."""
    rng = random.Random(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            target, parts, length = rng.randint(*record_chars), [], 0
            while length < target:
                parts.append(paragraphs[rng.randrange(len(paragraphs))])
                length += len(parts[-1]) + 2
            line = json.dumps({"input": "\n\n".join(parts)}) + "\n"
            out.write(line)
            written += len(line.encode("utf-8"))
    return path


def expected_examples(path: Path, tokenizer, window: int) -> list[Example]:
    with open(path) as lines:
        return [example for line in lines for example in text_examples(tokenizer, json.loads(line)["input"], window)]


@pytest.fixture
def small_file(tmp_path, paragraphs) -> Path:
    path = write_text_file(tmp_path / "small.jsonl", paragraphs, 60_000, (10, 3_000))
    with open(path, "a") as out:  # short records and a non-ASCII one: windows of every size
        out.write(json.dumps({"input": "x"}) + "\n")
        out.write(json.dumps({"input": "Ünïcödé ✓ — 日本語"}) + "\n")
    return path


def test_the_cache_holds_exactly_text_examples(small_file, tokenizer, tmp_path):
    cache = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=tmp_path / "cache")
    expected = expected_examples(small_file, tokenizer, 64)
    assert len(cache) == len(expected) > 100
    assert list(cache) == expected  # the same ids and labels, in the same order
    assert all(example.labels == example.input_ids for example in cache)  # every token a target
    assert IGNORE_INDEX not in cache[0].labels
    assert cache.lengths.tolist() == [len(example.input_ids) for example in expected]
    assert set(cache.lengths.tolist()) > {64}  # record ends make shorter windows
    assert cache.token_count == sum(len(example.input_ids) for example in expected)
    assert cache[-1] == expected[-1] and cache[len(cache) - 1] == expected[-1]
    assert cache[5:9] == expected[5:9]
    assert cache.take([7, 2, 7]) == [expected[7], expected[2], expected[7]]
    with pytest.raises(IndexError):
        cache[len(cache)]
    assert pickle.loads(pickle.dumps(cache))[3] == expected[3]  # a worker process reopens the folder

    held_out = cache.select([9, 4, 1])  # e.g. a seeded sample held out for validation loss
    assert list(held_out) == [expected[9], expected[4], expected[1]] and held_out[-1] == expected[1]
    assert held_out.lengths.tolist() == [len(expected[i].input_ids) for i in (9, 4, 1)]
    assert held_out.take([2, 0]) == [expected[1], expected[9]] and held_out[1:] == [expected[4], expected[1]]
    assert held_out.select([1]).take([0]) == [expected[4]]
    assert held_out.token_count == sum(len(expected[i].input_ids) for i in (9, 4, 1))
    assert pickle.loads(pickle.dumps(held_out))[0] == expected[9]


def test_rows_read_after_the_mapped_pages_are_dropped_are_the_same(small_file, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(token_cache, "DROP_EVERY", 7)  # unmap the cache's pages every 7 rows read
    cache = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=tmp_path / "cache")
    expected = expected_examples(small_file, tokenizer, 64)
    assert list(cache) == expected and cache.take(range(len(cache) - 1, -1, -1)) == expected[::-1]


def test_a_second_build_reuses_the_cache_without_tokenizing(small_file, tokenizer, tmp_path, monkeypatch):
    first = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=tmp_path / "cache")
    written = (first.path / token_cache.DATA_FILE).stat().st_mtime_ns

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("the file was tokenized again")

    monkeypatch.setattr(token_cache, "_write_text", no_tokenizing)
    again = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=tmp_path / "cache")
    assert again.path == first.path
    assert (again.path / token_cache.DATA_FILE).stat().st_mtime_ns == written
    assert list(again) == list(first)


def test_another_window_tokenizer_or_content_is_another_cache(small_file, tokenizer, tmp_path):
    cache_dir = tmp_path / "cache"
    first = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=cache_dir)
    wider = cached_text_examples(str(small_file), tokenizer, 128, cache_dir=cache_dir)
    assert wider.path != first.path and list(wider) == expected_examples(small_file, tokenizer, 128)

    plain = tiny.train_tokenizer(tiny.corpus_text()[:20_000], tiny.RECIPE)  # other merges
    assert token_cache.tokenizer_fingerprint(plain) != token_cache.tokenizer_fingerprint(tokenizer)
    assert cached_text_examples(str(small_file), plain, 64, cache_dir=cache_dir).path != first.path

    with open(small_file, "a") as out:
        out.write(json.dumps({"input": "one more record"}) + "\n")
    changed = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=cache_dir)
    assert changed.path != first.path and len(changed) == len(first) + 1


def test_the_default_cache_is_under_tailor_home(small_file, tokenizer, tailor_home):
    cache = cached_text_examples(str(small_file), tokenizer, 64)
    assert cache.path.parent == tailor_home / "cache" / "tokens"


@pytest.mark.parametrize("damage", ["no meta", "truncated data", "garbage data", "wrong count"])
def test_a_torn_cache_is_ignored_and_rebuilt(small_file, tokenizer, tmp_path, damage):
    cache_dir = tmp_path / "cache"
    path = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=cache_dir).path
    data, meta = path / token_cache.DATA_FILE, path / token_cache.META_FILE
    if damage == "no meta":
        meta.unlink()
    elif damage == "truncated data":
        with open(data, "r+b") as file:
            file.truncate(data.stat().st_size // 2)
    elif damage == "garbage data":
        data.write_bytes(os.urandom(data.stat().st_size))
    else:
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "examples": 1}))
    rebuilt = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=cache_dir)
    assert rebuilt.path == path
    assert list(rebuilt) == expected_examples(small_file, tokenizer, 64)


def test_a_killed_build_leaves_no_cache_and_its_scratch_is_cleaned_up(small_file, tokenizer, tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    real_texts_examples = token_cache.texts_examples
    calls = 0

    def dies_midway(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # as a killed process: after some data was written
        return real_texts_examples(*args, **kwargs)

    monkeypatch.setattr(token_cache, "BATCH_BYTES", 4_000)
    monkeypatch.setattr(token_cache, "texts_examples", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        cached_text_examples(str(small_file), tokenizer, 64, cache_dir=cache_dir)
    assert [entry.name for entry in cache_dir.iterdir() if not entry.name.endswith(".lock")] == []

    # A process killed outright leaves its scratch folder: the next build removes it.
    monkeypatch.setattr(token_cache, "texts_examples", real_texts_examples)
    key = token_cache._key({"version": token_cache.CACHE_VERSION, "kind": "text",
                            "file_sha256": storage.sha256_of(small_file),
                            "tokenizer": token_cache.tokenizer_fingerprint(tokenizer), "window": 64})
    (cache_dir / f".building-{key}-dead").mkdir()
    (cache_dir / f".building-{key}-dead" / token_cache.DATA_FILE).write_bytes(b"half")
    cache = cached_text_examples(str(small_file), tokenizer, 64, cache_dir=cache_dir)
    assert cache.path.name == key
    assert sorted(entry.name for entry in cache_dir.iterdir() if not entry.name.endswith(".lock")) == [key]


def test_a_line_that_is_not_a_text_record_names_its_line(tmp_path, tokenizer):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"input": "fine"}) + "\n\n" + json.dumps({"prompt": "a", "completion": "b"}) + "\n")
    with pytest.raises(InvalidInput, match="line 3"):
        cached_text_examples(str(path), tokenizer, 64, cache_dir=tmp_path / "cache")
    assert not any(entry.name.startswith("text-") for entry in (tmp_path / "cache").iterdir())


def test_an_empty_file_is_an_empty_cache(tmp_path, tokenizer):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    cache = cached_text_examples(str(path), tokenizer, 64, cache_dir=tmp_path / "cache")
    assert len(cache) == 0 and cache.lengths.tolist() == [] and list(cache) == []


# ---------------------------------------------------------------------------------------------
# Memory: each measurement in a fresh process, peak RSS (getrusage) over the RSS before the work.

MEASURE = """
import json, sys
import psutil
from transformers import AutoTokenizer
import datasets, pyarrow
from tailor.catalog import CustomizationType
from tailor.data.token_cache import cached_text_examples
from tailor.data.validate import validate
{setup}
# The peak from here on: imports (which may compile bytecode in a fresh environment) must not count.
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # resets the process's peak RSS (VmHWM) to its current RSS
before = psutil.Process().memory_info().rss
{work}
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(json.dumps([peak - before, result]))
"""


def peak_growth(setup: str, work: str) -> tuple[int, object]:
    """Peak RSS growth in bytes while ``work`` ran in a fresh process, and the ``result`` it set."""
    code = MEASURE.format(setup=setup, work=work)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    growth, result = json.loads(run.stdout.strip().splitlines()[-1])
    return growth, result


MB = 1 << 20


def test_validating_a_large_text_file_streams(tmp_path, paragraphs, make_model):
    """Before, ``validate`` kept every record: a 48 MB file took ~100 MB more."""
    path = write_text_file(tmp_path / "large.jsonl", paragraphs, 48 * MB, (5_000, 20_000))
    setup = f"import pickle\nmodel = pickle.loads({pickle.dumps(make_model())!r})"
    growth, records = peak_growth(setup, f"report = validate({str(path)!r}, CustomizationType.CONTINUED_PRE_TRAINING, "
                                         f"model)\nassert report.ok, report.render()\nresult = report.record_count")
    assert records > 3_000  # every record was read
    assert growth < 8 * MB, f"validating {path.stat().st_size / MB:.0f} MB took {growth / MB:.0f} MB more"


def test_building_the_cache_takes_memory_for_a_batch_not_for_the_file(tmp_path, paragraphs, tokenizer):
    """The cache of a file 8 times bigger takes hardly more memory: a build that kept the tokens
    would take ~10 bytes of RSS per byte of text (Python lists of ints); this one keeps one batch
    (~35 MB). bench/large_cpt.py shows the same for a 1 GiB file."""
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    small = write_text_file(tmp_path / "small.jsonl", paragraphs, 1 * MB, (20_000, 60_000))
    large = write_text_file(tmp_path / "large.jsonl", paragraphs, 8 * MB, (20_000, 60_000))
    # Batches small enough that both files fill several: what is compared is the file's size.
    setup = (f"tokenizer = AutoTokenizer.from_pretrained({str(tmp_path / 'tokenizer')!r})\n"
             "from tailor.data import token_cache\n"
             "token_cache.WRITE_TOKENS, token_cache.ROW_GROUP_TOKENS = 1 << 16, 1 << 14")

    def growth(path: Path) -> tuple[int, int]:
        return peak_growth(setup, f"cache = cached_text_examples({str(path)!r}, tokenizer, 1024, "
                                  f"cache_dir={str(tmp_path / 'cache')!r})\nresult = cache.token_count")

    (small_growth, small_tokens), (large_growth, large_tokens) = growth(small), growth(large)
    print(f"peak RSS growth: {small_growth / MB:.1f} MB for 1 MB, {large_growth / MB:.1f} MB for 8 MB "
          f"({large_tokens:,} tokens)")
    # Keeping the added tokens as Python lists would take ~44 bytes each (an 8-byte pointer and a
    # 28-byte int; ~78 MB here). What is measured is the allocator's fragmentation (5-11 MB): bound
    # it at 12 bytes a token. (From 8 MB to 1 GiB, bench/large_cpt.py sees ~20 MB more.)
    assert large_growth - small_growth < 12 * (large_tokens - small_tokens), (small_growth / MB, large_growth / MB)
    assert large_growth < 64 * MB, large_growth / MB  # one batch of the tokenizer's output and the libraries
