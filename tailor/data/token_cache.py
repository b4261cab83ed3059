"""Training text tokenized once into an on-disk cache, read back memory-mapped: data bigger than RAM.

A continued-pre-training file may be 10 GB (the original service's bound). Reading it into
records, then into ``Example`` lists, would take several times its size in memory. Instead the
file is streamed line by line, tokenized in batches of about 256 kB of text and written as
Arrow (``datasets``' ``ArrowWriter``); training reads the examples back from the memory-mapped
table, so a run's memory is bounded by one batch and the examples it holds, not by the file
(bench/large_cpt.py measures it for a 1 GiB file; docs/performance.md has the numbers).

The API the training side calls::

    from tailor.data.token_cache import cached_text_examples

    examples = cached_text_examples(uri, tokenizer, window, settings)      # -> TokenCache
    len(examples)            # number of examples (windows)
    examples[i]              # tailor.data.render.Example(input_ids, labels): plain lists of ints
                             # (~50 µs at random in a 1 GB cache on a 2-core CPU)
    examples[i:j]            # a list of Examples
    examples.lengths         # numpy int32 array: len(examples[i].input_ids) for every i, without reading them
    examples.token_count     # sum of lengths
    examples.take(indices)   # the Examples at these indices, in that order (a batch)
    examples.select(indices) # a CacheView: those examples as a sequence with the same interface
                             # (held-out validation examples: select a seeded sample of range(len))

Options: ``cache_dir`` (default ``$TAILOR_HOME/cache/tokens``), ``file_sha256`` (the file's
digest when the caller already has it, e.g. for the manifest: the file is then not hashed again),
``on_progress(bytes_done, bytes_total)`` (called after each batch while building).

- The examples are exactly ``render.text_examples(tokenizer, record.input, window)`` of each
  ``{"input": ...}`` record in file order, concatenated (``render.texts_examples`` does the
  tokenizing and windowing: one place for that rule). Validate the file first
  (``validate.validate``, which also streams); a line that is not a text record raises
  ``InvalidInput`` naming it.
- The cache is keyed by the file's sha256, the tokenizer's identity (its serialized vocabulary,
  merges and normalization, its end-of-sequence id, the ``tokenizers`` version), the window and
  ``CACHE_VERSION``: a second run or a resumed one on the same file and model reuses it.
- It is built in a scratch folder beside the cache and renamed into place only when whole (data
  and ``meta.json`` written and flushed), under a file lock, so two processes never tokenize one
  file at once and a killed build leaves nothing that looks whole. A cache folder that does not
  check out (missing or wrong-sized data, unreadable table, wrong count) is removed and rebuilt.
- A ``TokenCache`` pickles as its folder's path (a worker process reopens the memory map).
- Caches are not evicted; deleting ``$TAILOR_HOME/cache/tokens`` (or any folder in it) is always
  safe between runs.

``datasets`` and ``pyarrow`` are imported only when a cache is built or opened, so the control
plane never loads them (tests/test_layers.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from tailor import storage
from tailor.data.render import Example, texts_examples
from tailor.errors import InvalidInput
from tailor.settings import Settings, get_settings

if TYPE_CHECKING:
    import numpy as np

CACHE_VERSION = 1
DATA_FILE = "data.arrow"
META_FILE = "meta.json"
# Text tokenized per tokenizer call. The tokenizer's output for a batch takes ~50 times the text's
# size while in flight (the Rust encodings carry token strings and offsets, then Python lists of
# ints), and the allocator keeps that high-water mark: this bounds the build's memory (~35 MB over
# the process's baseline at 256 kB; 1 MB costs ~70 MB for no measurable speed).
BATCH_BYTES = 256 << 10
BATCH_RECORDS = 1024
# Tokens per Arrow record batch written (4 MB of int32). Opening a cache reads every batch's header
# through the memory map, touching the pages around it: few batches keep that small (~15 MB for
# 1 GB). Rows wait as Python lists for at most ROW_GROUP_TOKENS, then as compact Arrow.
WRITE_TOKENS = 1 << 20
ROW_GROUP_TOKENS = 64 << 10
DROP_EVERY = 512  # rows read between unmapping the cache's pages from the process (see TokenCache)
OnProgress = Callable[[int, int], None]


class TokenCache(Sequence[Example]):
    """Read-only examples backed by a memory-mapped Arrow table (see the module docstring)."""

    def __init__(self, path: Path | str):
        import pyarrow as pa

        self.path = Path(path)
        self.meta: dict[str, Any] = json.loads((self.path / META_FILE).read_text())
        # Memory-mapped, not read; marked for random access (length-grouped batches read rows all
        # over it), so a page fault reads its page from disk, not a readahead window (8 MB here).
        # Pages read stay mapped (page cache, in RSS as file-backed: ~200 kB a row read at random,
        # the page cache's large folios), so every DROP_EVERY rows they are unmapped again: RSS
        # stays bounded (~150 MB over the libraries' for 512, at no measurable cost in speed); the
        # data stays in the page cache and a later read maps it back.
        with open(self.path / DATA_FILE, "rb") as file:
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        self._advise = hasattr(self._map, "madvise")
        if self._advise and hasattr(mmap, "MADV_RANDOM"):
            self._map.madvise(mmap.MADV_RANDOM)
        self._rows_read = 0
        table = pa.ipc.open_stream(pa.py_buffer(self._map)).read_all()
        self._ids = table.column("input_ids")
        self._labels = table.column("labels")
        self.lengths: np.ndarray = table.column("length").to_numpy()

    def __len__(self) -> int:
        return len(self.lengths)

    @overload
    def __getitem__(self, index: int) -> Example: ...
    @overload
    def __getitem__(self, index: slice) -> list[Example]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        count = len(self)
        if not -count <= index < count:
            raise IndexError(f"example {index} of {count}")
        index %= count
        self._rows_read += 1
        if self._rows_read >= DROP_EVERY and self._advise and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)  # a shared read-only file mapping: safe to drop
            self._rows_read = 0
        ids = self._ids[index].values.to_numpy(zero_copy_only=False).tolist()
        labels = self._labels[index].values  # None: the same as the ids
        return Example(ids, list(ids) if labels is None else labels.to_numpy(zero_copy_only=False).tolist())

    def take(self, indices: Iterable[int]) -> list[Example]:
        """The examples at ``indices`` (in that order): what a batch wants. One row at a time:
        Arrow's ``take`` on a chunked column concatenates every chunk first (the whole cache)."""
        return [self[int(index)] for index in indices]

    @property
    def token_count(self) -> int:
        return int(self.meta["tokens"])

    @property
    def dataset(self):
        """The cache as a ``datasets.Dataset`` (memory-mapped too), for code that wants one."""
        from datasets import Dataset

        return Dataset.from_file(str(self.path / DATA_FILE))

    def select(self, indices: Iterable[int]) -> CacheView:
        """The examples at ``indices`` as a sequence of their own (held-out data, a shard)."""
        return CacheView(self, indices)

    def __reduce__(self):
        return (TokenCache, (str(self.path),))

    def __repr__(self) -> str:
        return f"TokenCache({str(self.path)!r}, examples={len(self):,}, tokens={self.token_count:,})"


class CacheView(Sequence[Example]):
    """Some of a ``TokenCache``'s examples, in a given order, with the same interface."""

    def __init__(self, cache: TokenCache, indices: Iterable[int]):
        import numpy as np

        self.cache = cache
        self.indices = np.asarray(list(indices) if not hasattr(indices, "__array__") else indices, dtype=np.int64)
        self.lengths = cache.lengths[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.take(range(*index.indices(len(self))))
        return self.cache[int(self.indices[index])]

    def take(self, indices: Iterable[int]) -> list[Example]:
        return self.cache.take(self.indices[list(indices)].tolist())

    @property
    def token_count(self) -> int:
        return int(self.lengths.sum())

    def select(self, indices: Iterable[int]) -> CacheView:
        return CacheView(self.cache, self.indices[list(indices)])


def cached_text_examples(
    uri: str,
    tokenizer,
    window: int,
    settings: Settings | None = None,
    cache_dir: Path | str | None = None,
    *,
    file_sha256: str | None = None,
    on_progress: OnProgress | None = None,
) -> TokenCache:
    """The ``text_examples`` of every record of a (validated) continued-pre-training file, from
    the cache, tokenizing the file first if no whole cache of it exists."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    settings = settings or get_settings()
    path = storage.local_path(uri, settings)
    identity = {
        "version": CACHE_VERSION,
        "kind": "text",
        "file_sha256": file_sha256 or storage.sha256_of(path),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "window": window,
    }
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir(settings)
    return _cached(root, identity,
                   lambda data_file: _write_text(uri, path, tokenizer, window, data_file, on_progress))


def default_cache_dir(settings: Settings) -> Path:
    return settings.home / "cache" / "tokens"


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides the ids a tokenizer gives a text: its serialized backend (vocabulary, merges,
    normalizer, pre-tokenizer, added tokens), its class, end-of-sequence id and library version."""
    import tokenizers

    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        described = backend.to_str()
    else:  # a slow (pure Python) tokenizer: its whole state
        from datasets.fingerprint import Hasher

        described = Hasher.hash(tokenizer)
    for part in (type(tokenizer).__qualname__, described, str(tokenizer.eos_token_id), tokenizers.__version__):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Building and finding a cache.


def _key(identity: dict[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True)
    return f"{identity['kind']}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _cached(root: Path, identity: dict[str, Any], write: Callable[[Path], dict[str, Any]]) -> TokenCache:
    key = _key(identity)
    target = root / key
    cache = _open_whole(target, identity)
    if cache is not None:
        return cache
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per cache; the others wait and reuse it
        cache = _open_whole(target, identity)
        if cache is not None:
            return cache
        if target.exists():  # torn or foreign: not a cache
            _remove(target, root)
        for stale in root.glob(f".building-{key}-*"):  # scratch of a killed build: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(dir=root, prefix=f".building-{key}-"))
        try:
            started = time.monotonic()
            stats = write(scratch / DATA_FILE)
            data_file = scratch / DATA_FILE
            _fsync(data_file)
            meta = {**identity, **stats, "data_bytes": data_file.stat().st_size,
                    "build_seconds": round(time.monotonic() - started, 3)}
            (scratch / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
            _fsync(scratch / META_FILE)
            os.rename(scratch, target)
            _fsync(root)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    cache = _open_whole(target, identity)
    if cache is None:
        raise RuntimeError(f"the token cache just written at {target} does not read back")
    return cache


def _open_whole(target: Path, identity: dict[str, Any]) -> TokenCache | None:
    """The cache at ``target`` if it is whole and is the one asked for; otherwise None."""
    try:
        meta = json.loads((target / META_FILE).read_text())
        if any(meta.get(name) != value for name, value in identity.items()):
            return None
        if (target / DATA_FILE).stat().st_size != meta["data_bytes"]:
            return None
        cache = TokenCache(target)
        if len(cache) != meta["examples"]:
            return None
        return cache
    except Exception:  # noqa: BLE001 - missing, unreadable or torn: not a cache
        return None


def _remove(target: Path, root: Path) -> None:
    aside = root / f".discard-{target.name}-{uuid.uuid4().hex[:8]}"
    os.rename(target, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------------------------
# Text (continued pre-training) records.


def _text_batches(uri: str, path: Path, on_progress: OnProgress | None) -> Iterator[list[str]]:
    """The ``input`` of each record, in batches of about ``BATCH_BYTES``; one line in memory at a
    time besides the batch."""
    total = path.stat().st_size
    done = 0
    batch: list[str] = []
    batch_bytes = 0
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            done += len(raw)
            if not raw.strip():
                continue
            batch.append(_text_of(uri, number, raw))
            batch_bytes += len(raw)
            if batch_bytes >= BATCH_BYTES or len(batch) >= BATCH_RECORDS:
                yield batch
                if on_progress is not None:
                    on_progress(done, total)
                batch, batch_bytes = [], 0
    if batch:
        yield batch
    if on_progress is not None:
        on_progress(total, total)


def _text_of(uri: str, number: int, raw: bytes) -> str:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"{uri}: line {number}: not a JSON record ({error}); validate the file first") from None
    text = value.get("input") if isinstance(value, dict) else None
    if not isinstance(text, str):
        raise InvalidInput(f'{uri}: line {number}: not a text record {{"input": "..."}}; validate the file first')
    return text


def _write_text(uri: str, path: Path, tokenizer, window: int, data_file: Path,
                on_progress: OnProgress | None) -> dict[str, Any]:
    return _write_examples(
        (example
         for texts in _text_batches(uri, path, on_progress)
         for record_examples in texts_examples(tokenizer, texts, window)
         for example in record_examples),
        data_file,
    )


def _write_examples(examples: Iterable[Example], data_file: Path) -> dict[str, Any]:
    """Write examples as Arrow in record batches of about ``WRITE_TOKENS`` tokens; labels equal to the
    ids (every token a target) are stored as null and read back as a copy of the ids."""
    import pyarrow as pa
    from datasets import Features, List, Value
    from datasets.arrow_writer import ArrowWriter

    features = Features({"input_ids": List(Value("int32")), "labels": List(Value("int32")),
                         "length": Value("int32")})
    schema = features.arrow_schema
    counts = {"examples": 0, "tokens": 0, "target_tokens": 0}
    ids: list[list[int]] = []
    labels: list[list[int] | None] = []
    tables: list[pa.Table] = []
    row_tokens = table_tokens = 0

    def pack() -> None:  # Python lists -> a compact table
        nonlocal ids, labels, row_tokens, table_tokens
        if ids:
            lengths = pa.array([len(row) for row in ids], type=pa.int32())
            tables.append(pa.Table.from_arrays(
                [pa.array(ids, type=pa.list_(pa.int32())), pa.array(labels, type=pa.list_(pa.int32())), lengths],
                schema=schema))
            table_tokens += row_tokens
        ids, labels, row_tokens = [], [], 0

    def write() -> None:  # the compact tables -> one record batch
        nonlocal tables, table_tokens
        pack()
        if tables:
            writer.write_table(pa.concat_tables(tables).combine_chunks())
        tables, table_tokens = [], 0

    with ArrowWriter(features=features, path=str(data_file), writer_batch_size=1 << 30) as writer:
        for example in examples:
            ids.append(example.input_ids)
            same = example.labels == example.input_ids
            labels.append(None if same else example.labels)
            counts["examples"] += 1
            counts["tokens"] += len(example.input_ids)
            counts["target_tokens"] += len(example.input_ids) if same else example.target_count
            row_tokens += len(example.input_ids)
            if row_tokens >= ROW_GROUP_TOKENS:
                pack()
                if table_tokens >= WRITE_TOKENS:
                    write()
        write()
        writer.finalize()
    return counts
