"""The inference engine: many requests, many LoRA models, one base model in memory, batched.

How a request travels:

1. ``Engine.submit`` queues it with a callback that receives ``TextDelta`` events and one final
   ``Completion`` (or an ``EngineError``).
   A prompt over ``max_prompt_characters`` is refused right there, before anything tokenizes it.
2. Once its base model is loaded, the request's prompt is rendered and tokenized in a tokenizer
   thread, never in the scheduler thread: a long prompt (about a second per million characters)
   must not pause the decoding of everyone else's running sequences.
3. The scheduler thread admits tokenized requests into the running batch of their base model
   (*continuous batching*: a request joins between two decoding steps; it does not wait for the
   batch to finish). New requests are pre-filled together, and their KV cache is merged into the
   batch's cache, left-padded to a common length.
4. Every step decodes one token for every running sequence of a base model in one forward pass.
   Rows of the same batch may use different LoRA adapters: peft's mixed-adapter forward
   (``adapter_names=[...]``, ``"__base__"`` for the plain base) applies each row's own adapter.
5. Each row samples with its own parameters (greedy, temperature, top-k, top-p, seed), checks its
   own stop sequences and token limit, and leaves the batch when done; its cache rows go with it.

Weights: base models load in a loader thread (a big model does not stall decoding for others);
LoRA adapters load in the scheduler thread between steps (they change the model's modules, which
must not happen mid-forward). Both are kept least-recently-used: ``engine_max_models`` bases,
``engine_max_adapters`` adapters per base. A full-weight custom model is a base of its own.

Prompts are rendered by ``tailor.data.render.prompt_ids`` — the very function training used — so
a deployed model sees exactly the tokens it was trained on. The forward passes and the choice of
each token are ``tailor.serve.decoding``'s, which ``tailor generate`` and reinforcement
fine-tuning's held-out checks run too; this module adds the scheduling around them.

This module is the engine itself; ``tailor.serve.engine_server`` runs it in a process of its own so
that a crash here never takes the API server down.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from tailor.errors import InvalidInput
from tailor.serve import decoding
from tailor.serve.protocol import (
    ChatRequest,
    Completion,
    Sampling,
    Target,
    TextDelta,
    check_prompt_size,
)

log = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch
# Tokenizers (Rust) release the GIL while they work, so prompts tokenize in parallel with decoding.
# Several threads, so that one long prompt (bounded by max_prompt_characters: ~1 s) does not hold
# up the short prompts that arrive behind it.
TOKENIZER_THREADS = 4
TOKENIZERS_KEPT = 8  # tokenizers loaded without their model (training views): small, kept LRU


@dataclass(frozen=True)
class EngineError:
    """A request that ended without an answer. ``code`` is the Bedrock runtime error code."""

    code: str  # ValidationException | ModelTimeoutException | ModelErrorException
    message: str


Event = TextDelta | Completion | EngineError
Emit = Callable[[Event], None]


# ---------------------------------------------------------------------------------------------
# Text bookkeeping for one sequence: stop sequences and safe streaming (pure, tested directly)


def held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` must wait before being streamed.

    Those that could still become a stop sequence (the user must never see part of one), and a
    trailing replacement character (half of a multi-byte character split across tokens).
    """
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:size]):
                hold = size
                break
    if text.endswith("\ufffd"):
        hold = max(hold, 1)
    return hold


def find_stop(text: str, stops: tuple[str, ...], since: int) -> tuple[int, str] | None:
    """The earliest stop sequence in ``text`` that ends after ``since``: ``(index, stop)``."""
    best: tuple[int, str] | None = None
    for stop in stops:
        index = text.find(stop, max(0, since - len(stop) + 1))
        if index >= 0 and (best is None or index < best[0]):
            best = (index, stop)
    return best


# ---------------------------------------------------------------------------------------------
# Requests and loaded weights


@dataclass
class _Request:
    target: Target
    chat: ChatRequest
    emit: Emit
    deadline: float
    submitted: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    tokenizing: Future | None = None  # the prompt's ids, computed in a tokenizer thread
    # Filled in when the request joins a batch:
    prompt: list[int] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)
    sent: int = 0  # characters of the answer already emitted
    first_token_at: float | None = None
    generator: object = None  # torch.Generator for seeded sampling

    @property
    def sampling(self) -> Sampling:
        return self.chat.sampling


class Handle:
    """What ``submit`` returns: cancel a request that nobody is waiting for any more."""

    def __init__(self, request: _Request):
        self._request = request

    def cancel(self) -> None:
        self._request.cancelled = True


@dataclass
class _Base:
    """A base model in memory, the adapters loaded on it, and its running batch."""

    key: str
    model: object
    tokenizer: object
    stop_ids: set[int]
    context: int  # positions the model can attend to: prompt + answer must fit
    adapters: OrderedDict[str, None] = field(default_factory=OrderedDict)  # LRU order
    rows: list[_Request] = field(default_factory=list)
    cache: object = None  # transformers DynamicCache for ``rows``
    mask: object = None  # attention mask [rows, positions]
    next_tokens: object = None  # the token each row feeds next [rows]


def adapter_name(path: str) -> str:
    # peft adapter names become module attribute keys: no dots or slashes allowed.
    return "adapter_" + hashlib.sha1(path.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------


class Engine:
    """Continuous batching over every loaded base model; thread-safe ``submit``."""

    def __init__(self, settings, *, max_batch: int | None = None, max_models: int | None = None,
                 max_adapters: int | None = None):
        self.settings = settings
        self.max_batch = max_batch or settings.engine_max_batch
        self.max_models = max_models or settings.engine_max_models
        self.max_adapters = max_adapters or settings.engine_max_adapters
        self._queue: queue.Queue[_Request] = queue.Queue()
        self._chores: queue.Queue[tuple[Callable[[], object], Future]] = queue.Queue()  # run between steps
        self._waiting: list[_Request] = []  # queued, their base not loaded yet (scheduler-owned)
        self._bases: OrderedDict[str, _Base] = OrderedDict()  # LRU order; scheduler-owned
        self._loads: dict[str, Future] = {}
        self._loads_lock = threading.Lock()
        self._tokenizers_only: OrderedDict[str, object] = OrderedDict()  # tokenizer-only cache, LRU
        self._tokenizers_lock = threading.Lock()
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailor-loader")
        self._tokenizers = ThreadPoolExecutor(max_workers=TOKENIZER_THREADS, thread_name_prefix="tailor-tokenize")
        self._closed = threading.Event()
        self._wake = threading.Event()
        self.stats = {"steps": 0, "rows_decoded": 0, "adapter_loads": 0, "base_loads": 0}
        self._thread = threading.Thread(target=self._run, name="tailor-scheduler", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def submit(self, target: Target, chat: ChatRequest, emit: Emit, *, timeout_s: float | None = None) -> Handle:
        timeout = timeout_s or self.settings.inference_timeout_seconds
        request = _Request(target, chat, emit, deadline=time.monotonic() + timeout)
        try:  # the API checked already; this guards every other caller (evaluation, benchmarks)
            check_prompt_size(chat, self.settings.max_prompt_characters)
        except InvalidInput as error:
            emit(EngineError("ValidationException", error.message))
            return Handle(request)
        self._load_base(target.base)  # start loading now, while the request waits
        self._queue.put(request)
        self._wake.set()
        return Handle(request)

    def load(self, target: Target, timeout_s: float = 3600) -> None:
        """Load ``target`` (base and adapter) now; raises what loading raised."""
        self._load_base(target.base).result(timeout=timeout_s)
        if target.adapter:
            # Adapters change the model's modules, so they load in the scheduler thread.
            self._between_steps(lambda: self._use_adapter(self._install(target.base), target.adapter)) \
                .result(timeout=timeout_s)

    def _between_steps(self, work: Callable[[], object]) -> Future:
        """Run ``work`` in the scheduler thread, between two decoding steps; its result as a future."""
        future: Future = Future()
        self._chores.put((work, future))
        self._wake.set()
        return future

    def count_tokens(self, target: Target, chat: ChatRequest) -> int:
        """The prompt's length in tokens; runs in the caller's thread, not the scheduler's."""
        check_prompt_size(chat, self.settings.max_prompt_characters)
        _, tokenizer = self._load_base(target.base).result()
        return len(self._prompt_ids(tokenizer, chat))

    def tokenizer(self, key: str):
        """The tokenizer of base ``key`` — the loaded model's when it is in memory, else loaded on
        its own (no weights: the training view needs only the tokenizer and the chat template)."""
        base = self._bases.get(key)
        if base is not None:
            return base.tokenizer
        with self._tokenizers_lock:
            if key in self._tokenizers_only:
                self._tokenizers_only.move_to_end(key)
                return self._tokenizers_only[key]
            from tailor.catalog import resolve_model
            from tailor.weights import load_tokenizer

            tokenizer = load_tokenizer(resolve_model(key, self.settings), self.settings, progress=False)
            self._tokenizers_only[key] = tokenizer
            while len(self._tokenizers_only) > TOKENIZERS_KEPT:
                self._tokenizers_only.popitem(last=False)
            return tokenizer

    def render(self, key: str, kind: str, records: list) -> list[dict]:
        """The training view of each record (``tailor.data.preview``) with ``key``'s tokenizer: per
        record its segments and counts, or the error that stopped it. Runs in the caller's thread."""
        from tailor.data.preview import training_view

        tokenizer = self.tokenizer(key)
        views = []
        for record in records:
            try:
                views.append(training_view(tokenizer, record, kind).to_json())
            except InvalidInput as error:
                views.append({"error": error.message})
            except Exception as error:  # a template that cannot render this record: say so, per record
                views.append({"error": f"The chat template cannot render this record: {_reason(error)}"})
        return views

    def loaded(self) -> dict[str, list[str]]:
        """Base models in memory and the adapters on each (a snapshot, for monitoring)."""
        return {key: list(base.adapters) for key, base in list(self._bases.items())}

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._tokenizers.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ loading

    def _load_base(self, key: str) -> Future:
        """A future of ``(model, tokenizer)``; loading starts at most once per key."""
        with self._loads_lock:
            future = self._loads.get(key)
            if future is None or (future.done() and future.exception() is not None and key not in self._bases):
                future = self._loader.submit(self._read_base, key)
                self._loads[key] = future
            return future

    def _read_base(self, key: str):
        from tailor.catalog import resolve_model
        from tailor.weights import load_causal_lm, load_tokenizer

        started = time.perf_counter()
        resolved = resolve_model(key, self.settings)
        model = load_causal_lm(resolved, self.settings, progress=False)
        model.eval()
        tokenizer = load_tokenizer(resolved, self.settings, progress=False)
        self.stats["base_loads"] += 1
        log.info("loaded %s in %.2f s", key, time.perf_counter() - started)
        self._wake.set()
        return model, tokenizer

    def _install(self, key: str) -> _Base | None:
        """The loaded base for ``key``, installing it (and evicting an idle one) if just loaded."""
        if key in self._bases:
            self._bases.move_to_end(key)
            return self._bases[key]
        future = self._loads.get(key)
        if future is None or not future.done() or future.exception() is not None:
            return None
        model, tokenizer = future.result()
        stop_ids = decoding.stop_ids(model, tokenizer)
        # The smaller of what the weights were built for and what the tokenizer allows (capped at
        # the documented context for the hub table's models: weights.load_tokenizer).
        positions = getattr(model.config, "max_position_embeddings", None) or tokenizer.model_max_length
        context = min(positions, tokenizer.model_max_length or positions)
        self._bases[key] = _Base(key, model, tokenizer, stop_ids, int(context))
        while len(self._bases) > self.max_models:
            idle = next((k for k, b in self._bases.items() if not b.rows and k != key), None)
            if idle is None:
                break
            del self._bases[idle]
            with self._loads_lock:
                self._loads.pop(idle, None)
            log.info("unloaded %s (least recently used)", idle)
        return self._bases[key]

    def _use_adapter(self, base: _Base, path: str) -> str:
        """Make sure the adapter at ``path`` is on ``base``; its peft name."""
        from peft import PeftModel

        name = adapter_name(path)
        if name in base.adapters:
            base.adapters.move_to_end(name)
            return name
        in_use = {adapter_name(r.target.adapter) for r in base.rows + self._waiting if r.target.adapter}
        while len(base.adapters) >= self.max_adapters:
            victim = next((n for n in base.adapters if n not in in_use), None)
            if victim is None:
                break
            base.model.delete_adapter(victim)
            del base.adapters[victim]
        if isinstance(base.model, PeftModel):
            base.model.load_adapter(path, adapter_name=name)
        else:
            base.model = PeftModel.from_pretrained(base.model, path, adapter_name=name)
        # peft needs an active adapter that exists (rows choose theirs with adapter_names).
        base.model.set_adapter(name)
        base.model.eval()
        base.adapters[name] = None
        self.stats["adapter_loads"] += 1
        return name

    # ------------------------------------------------------------------ the scheduler

    def _run(self) -> None:
        import torch

        torch.set_grad_enabled(False)
        while not self._closed.is_set():
            try:
                busy = self._tick()
            except Exception:  # a bug must not silently kill the scheduler thread
                log.exception("scheduler tick failed")
                busy = False
            if not busy:
                self._wake.wait(timeout=0.05)
                self._wake.clear()

    def _tick(self) -> bool:
        while True:
            try:
                work, future = self._chores.get_nowait()
            except queue.Empty:
                break
            try:
                future.set_result(work())
            except Exception as error:  # reported to whoever asked, the engine goes on
                future.set_exception(error)
        while True:
            try:
                self._waiting.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._admit()
        stepped = False
        for base in list(self._bases.values()):
            if base.rows:
                try:
                    self._step(base)
                except Exception:  # fail this batch, keep serving the others
                    log.exception("decoding step failed")
                    for row in base.rows:
                        row.emit(EngineError("ModelErrorException", "The model failed while generating."))
                    _reset_batch(base)
                stepped = True
        return stepped

    def _admit(self) -> None:
        """Move waiting requests into their base's batch (pre-filling them together).

        A request waits here for its base model to load, then for its prompt to be tokenized in a
        tokenizer thread (started here, once the base's tokenizer exists), then for room in the batch.
        """
        now = time.monotonic()
        joining: dict[str, list[_Request]] = {}
        still_waiting = []
        for request in self._waiting:
            if request.cancelled:
                if request.tokenizing is not None:
                    request.tokenizing.cancel()  # if it has not started, it never will
                continue
            if now > request.deadline:
                request.emit(EngineError("ModelTimeoutException", "The model was not ready before the "
                                         "request's time limit; try again when it has loaded."))
                continue
            future = self._loads.get(request.target.base)
            if future is not None and future.done() and future.exception() is not None \
                    and request.target.base not in self._bases:
                request.emit(EngineError("ModelErrorException", f"The model could not be loaded: "
                                         f"{_reason(future.exception())}"))
                continue
            base = self._install(request.target.base)
            group = joining.setdefault(request.target.base, [])
            if base is not None and request.tokenizing is None:
                request.tokenizing = self._tokenizers.submit(self._prompt_ids, base.tokenizer, request.chat)
                request.tokenizing.add_done_callback(lambda _: self._wake.set())
            if base is None or not request.tokenizing.done() or len(base.rows) + len(group) >= self.max_batch:
                still_waiting.append(request)
                continue
            if self._prepare(base, request):
                group.append(request)
        self._waiting = still_waiting
        for key, group in joining.items():
            if group:
                base = self._bases[key]
                try:
                    self._prefill(base, group)
                except Exception:  # these requests fail; the running batch is untouched
                    log.exception("prefill failed")
                    for request in group:
                        request.emit(EngineError("ModelErrorException", "The model failed on this input."))

    def _prepare(self, base: _Base, request: _Request) -> bool:
        """Check a tokenized request; emits the error and returns False when it cannot run."""
        sampling = request.sampling
        try:
            request.prompt = request.tokenizing.result()
            if request.target.adapter:
                self._use_adapter(base, request.target.adapter)
        except Exception as error:
            request.emit(EngineError("ModelErrorException", f"The request could not be prepared: {_reason(error)}"))
            return False
        needed = len(request.prompt) + sampling.max_tokens
        if needed > base.context:
            request.emit(EngineError(
                "ValidationException",
                f"The input is {len(request.prompt)} tokens and max tokens is {sampling.max_tokens}: "
                f"together {needed}, over this model's context window of {base.context} tokens. "
                f"Shorten the input or lower the maximum number of tokens."))
            return False
        request.generator = decoding.generator_for(sampling, decoding.device_of(base.model))
        return True

    @staticmethod
    def _prompt_ids(tokenizer, chat: ChatRequest) -> list[int]:
        from tailor.data.render import prompt_ids

        turns = chat.turns()
        if turns and turns[-1]["role"] == "assistant":
            # A prefilled answer: the model continues this text inside its own turn.
            ids = prompt_ids(tokenizer, turns[:-1])
            return ids + tokenizer(turns[-1]["content"], add_special_tokens=False)["input_ids"]
        return prompt_ids(tokenizer, turns)

    def _adapter_names(self, base: _Base, rows: list[_Request]) -> dict:
        if not base.adapters:
            return {}
        return {"adapter_names": [adapter_name(r.target.adapter) if r.target.adapter else BASE_ADAPTER
                                  for r in rows]}

    def _prefill(self, base: _Base, rows: list[_Request]) -> None:
        import torch

        logits, cache, mask = decoding.prefill(base.model, [r.prompt for r in rows], decoding.pad_id(base.tokenizer),
                                               **self._adapter_names(base, rows))
        tokens = self._sample(rows, logits)
        _merge_into(base, rows, cache, mask)
        base.next_tokens = tokens if base.next_tokens is None else torch.cat([base.next_tokens, tokens])
        self._after_tokens(base, offset=len(base.rows) - len(rows), tokens=tokens)

    def _step(self, base: _Base) -> None:
        rows = base.rows
        logits, base.cache, base.mask = decoding.step(base.model, base.next_tokens, base.mask, base.cache,
                                                      **self._adapter_names(base, rows))
        tokens = self._sample(rows, logits)
        base.next_tokens = tokens
        self.stats["steps"] += 1
        self.stats["rows_decoded"] += len(rows)
        self._after_tokens(base, offset=0, tokens=tokens)

    @staticmethod
    def _sample(rows: list[_Request], logits):
        """One next token per row, each with its own sampling parameters."""
        return decoding.choose(logits, [row.sampling for row in rows], [row.generator for row in rows])

    def _after_tokens(self, base: _Base, offset: int, tokens) -> None:
        """Record each row's new token, stream its text, retire finished rows."""
        now = time.monotonic()
        finished: list[int] = []
        for index, token in enumerate(tokens.tolist()):
            row = base.rows[offset + index]
            if row.first_token_at is None:
                row.first_token_at = now
            result = self._advance(base, row, token, now)
            if result is not None:
                row.emit(result)
                finished.append(offset + index)
            elif row.cancelled:
                finished.append(offset + index)
        # Rows cancelled while an earlier row of the batch was being prefilled:
        finished += [i for i, row in enumerate(base.rows) if row.cancelled and i not in finished]
        if finished:
            _drop_rows(base, sorted(set(finished)))

    def _advance(self, base: _Base, row: _Request, token: int, now: float) -> Event | None:
        """Append ``token`` to ``row``; the final event when the row is done, else None."""
        sampling = row.sampling
        stopped_by_model = token in base.stop_ids
        if not stopped_by_model:
            row.generated.append(token)
        text = base.tokenizer.decode(row.generated, skip_special_tokens=True)
        reason, stop = None, None
        if stopped_by_model:
            reason = "end_turn"
        elif (found := find_stop(text, sampling.stop, row.sent)) is not None:
            text, stop, reason = text[: found[0]], found[1], "stop_sequence"
        elif len(row.generated) >= sampling.max_tokens:
            reason = "max_tokens"
        elif now > row.deadline:
            return EngineError("ModelTimeoutException",
                               f"The model did not finish within the request's time limit ({len(row.generated)} "
                               "tokens generated); raise the timeout or ask for fewer tokens.")
        visible = len(text) if reason else len(text) - held_back(text, sampling.stop)
        if visible > row.sent:
            row.emit(TextDelta(text[row.sent : visible]))
            row.sent = visible
        if reason is None:
            return None
        first_token = (row.first_token_at or now) - row.submitted
        return Completion(
            text=text, stop_reason=reason, stop_sequence=stop, input_tokens=len(row.prompt),
            output_tokens=len(row.generated) + (1 if stopped_by_model else 0),
            latency_ms=round((now - row.submitted) * 1000), first_token_ms=round(first_token * 1000),
        )


# ---------------------------------------------------------------------------------------------
# Batch cache surgery: rows join (left-padded to a common length) and leave.


def _merge_into(base: _Base, rows: list[_Request], cache, mask) -> None:
    import torch
    from transformers import DynamicCache

    if not base.rows:
        base.rows, base.cache, base.mask = list(rows), cache, mask
        return
    width = max(base.mask.shape[1], mask.shape[1])
    layers = []
    for old, new in zip(base.cache.layers, cache.layers):
        keys = torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)])
        values = torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)])
        layers.append((keys, values))
    base.cache = DynamicCache(layers)
    base.mask = torch.cat([_left_pad(base.mask, width), _left_pad(mask, width)])
    base.rows = base.rows + list(rows)


def _left_pad(tensor, width: int):
    """Zero-pad the position dimension (dim -2 of a cache tensor, -1 of a mask) on the left."""
    import torch.nn.functional as functional

    if tensor.dim() == 2:
        return functional.pad(tensor, (width - tensor.shape[1], 0))
    return functional.pad(tensor, (0, 0, width - tensor.shape[-2], 0))


def _drop_rows(base: _Base, indices: list[int]) -> None:
    import torch

    keep = [i for i in range(len(base.rows)) if i not in set(indices)]
    if not keep:
        _reset_batch(base)
        return
    index = torch.tensor(keep, device=base.mask.device)
    base.rows = [base.rows[i] for i in keep]
    base.mask = base.mask.index_select(0, index)
    base.next_tokens = base.next_tokens.index_select(0, index)
    # Positions nobody attends to any more (the departed rows' longer prompts) are cut away.
    first = int(base.mask.any(dim=0).nonzero()[0])
    base.mask = base.mask[:, first:]
    for layer in base.cache.layers:
        layer.keys = layer.keys.index_select(0, index)[:, :, first:]
        layer.values = layer.values.index_select(0, index)[:, :, first:]


def _reset_batch(base: _Base) -> None:
    base.rows, base.cache, base.mask, base.next_tokens = [], None, None, None


def _reason(error: BaseException) -> str:
    return getattr(error, "message", None) or str(error) or type(error).__name__
