"""The engine in-process, on really trained tiny models: batching, multi-LoRA, stops, sampling, limits."""

from __future__ import annotations

import threading
import time

import pytest

from tailor.errors import InvalidInput
from tailor.serve.engine import Engine, EngineError, find_stop, held_back
from tailor.serve.protocol import ChatRequest, Completion, Message, Sampling, Target, TextDelta

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------- pure text rules


def test_held_back_keeps_possible_stop_prefixes_and_split_characters():
    assert held_back("Hello wor", ("world",)) == 3
    assert held_back("Hello", ("world",)) == 0
    assert held_back("a END", ("END!", "x")) == 3
    assert held_back("caf\ufffd", ()) == 1
    assert held_back("abc", ()) == 0


def test_find_stop_takes_the_earliest_and_only_new_text():
    assert find_stop("one. two! three.", (".", "!"), 0) == (3, ".")
    assert find_stop("one. two!", ("!",), 5) == (8, "!")
    assert find_stop("one. two", (".",), 6) is None  # found before: the scan starts after `since`
    assert find_stop("ab|cd", ("b|c",), 2) == (1, "b|c")  # a stop straddling old and new text


# ---------------------------------------------------------------- the engine


@pytest.fixture(scope="module")
def engine(trained):
    from tailor.settings import Settings

    running = Engine(Settings(home=trained.home))
    yield running
    running.close()


class Answer:
    def __init__(self):
        self.deltas: list[str] = []
        self.final: Completion | EngineError | None = None
        self.done = threading.Event()

    def __call__(self, event) -> None:
        if isinstance(event, TextDelta):
            self.deltas.append(event.text)
        else:
            self.final = event
            self.done.set()

    def wait(self) -> Completion | EngineError:
        assert self.done.wait(120), "the engine did not answer"
        return self.final


def ask(engine: Engine, target: Target, question: str, *, system: str | None = None, timeout_s=None,
        **sampling) -> Answer:
    messages = ((Message("system", system),) if system else ()) + (Message("user", question),)
    answer = Answer()
    engine.submit(target, ChatRequest(messages, Sampling(**{"max_tokens": 128, **sampling})), answer,
                  timeout_s=timeout_s)
    return answer


def full_target(trained) -> Target:
    return Target(base=str(trained.full / "model"))


def lora_target(folder) -> Target:
    return Target(base="tailor.tiny", adapter=str(folder / "model"))


def test_concurrent_requests_are_batched_and_match_plain_generate(engine, trained):
    from tailor.serve.generation import chat, load_for_inference
    from tailor.settings import Settings

    system = trained.faq[0]["system"]
    questions = [record["messages"][0]["content"] for record in trained.faq[:8]]
    taught = [record["messages"][1]["content"] for record in trained.faq[:8]]
    steps_before, rows_before = engine.stats["steps"], engine.stats["rows_decoded"]

    answers = [ask(engine, full_target(trained), q, system=system) for q in questions]
    finals = [a.wait() for a in answers]

    reference = chat(load_for_inference(str(trained.full), Settings(home=trained.home), progress=False),
                     questions, system=system, max_new_tokens=128)
    assert [f.text for f in finals] == reference  # the same tokens plain HF generate picks
    assert sum(f.text == t for f, t in zip(finals, taught)) >= 7  # and the taught answers
    for answer, final in zip(answers, finals):
        assert "".join(answer.deltas) == final.text  # the stream adds up to the answer
        assert final.stop_reason == "end_turn" and final.input_tokens > 20 and final.output_tokens > 5
    # Batched: far fewer forward passes than tokens decoded.
    steps = engine.stats["steps"] - steps_before
    rows = engine.stats["rows_decoded"] - rows_before
    assert rows / steps > 4, f"{rows} rows in {steps} steps: requests were not decoded together"


def test_two_lora_adapters_answer_differently_in_one_batch(engine, trained):
    from tailor.serve.generation import chat, load_for_inference
    from tailor.settings import Settings

    settings = Settings(home=trained.home)
    prompts = ["Code 3?", "Code 5?"]
    batch = [ask(engine, lora_target(folder), prompt, max_tokens=24)
             for prompt in prompts for folder in (trained.lora_a, trained.lora_b)]
    batch.append(ask(engine, Target("tailor.tiny"), prompts[0], max_tokens=24))
    texts = [answer.wait().text.strip() for answer in batch]  # chat() strips its answers

    alone = {folder: chat(load_for_inference(str(folder), settings, progress=False), prompts, max_new_tokens=24)
             for folder in (trained.lora_a, trained.lora_b)}
    base = chat(load_for_inference("tailor.tiny", settings, progress=False), prompts[:1], max_new_tokens=24)
    # Each row answered with its own adapter, exactly as that adapter alone answers.
    assert texts[0] == alone[trained.lora_a][0] and texts[1] == alone[trained.lora_b][0]
    assert texts[2] == alone[trained.lora_a][1] and texts[3] == alone[trained.lora_b][1]
    assert texts[4] == base[0]
    assert texts[0] != texts[1] and texts[2] != texts[3]


def test_stop_sequences_end_the_answer_and_are_never_streamed(engine, trained):
    question = trained.faq[0]["messages"][0]["content"]
    taught = trained.faq[0]["messages"][1]["content"]
    stop = taught[15:19]
    answer = ask(engine, full_target(trained), question, system=trained.faq[0]["system"], stop=(stop, "zzzz"))
    final = answer.wait()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == stop
    assert final.text == taught[: taught.index(stop)]
    assert "".join(answer.deltas) == final.text


def test_max_tokens_is_honoured(engine, trained):
    final = ask(engine, full_target(trained), trained.faq[0]["messages"][0]["content"], max_tokens=5).wait()
    assert final.stop_reason == "max_tokens" and final.output_tokens == 5


def test_sampling_is_seeded_per_request(engine):
    def sample(seed):
        return ask(engine, Target("tailor.tiny"), "Tell me a story.", max_tokens=24, temperature=1.0,
                   top_p=0.95, top_k=50, seed=seed)

    first, again, other = sample(1), sample(1), sample(2)
    assert first.wait().text == again.wait().text
    assert first.wait().text != other.wait().text
    greedy = ask(engine, Target("tailor.tiny"), "Tell me a story.", max_tokens=24).wait()
    assert greedy.text != first.wait().text


def test_an_input_over_the_context_window_is_refused_naming_the_limit(engine):
    final = ask(engine, Target("tailor.tiny"), "word " * 1200, max_tokens=10).wait()
    assert isinstance(final, EngineError) and final.code == "ValidationException"
    assert "context window of 1024 tokens" in final.message


def test_a_prompt_over_the_character_limit_is_refused_before_tokenizing(engine):
    limit = engine.settings.max_prompt_characters
    answer = ask(engine, Target("tailor.tiny"), "word " * (limit // 5 + 1), max_tokens=10)
    assert answer.done.is_set()  # refused inside submit: nothing was tokenized
    final = answer.wait()
    assert isinstance(final, EngineError) and final.code == "ValidationException"
    assert f"limit of {limit:,} characters" in final.message
    oversized = ChatRequest((Message("user", "word " * (limit // 5 + 1)),), Sampling(max_tokens=10))
    with pytest.raises(InvalidInput, match="limit of"):
        engine.count_tokens(Target("tailor.tiny"), oversized)


def test_a_long_prompt_is_tokenized_without_pausing_running_sequences(engine):
    # A running answer records when each of its pieces arrives.
    story, arrivals = Answer(), []

    def timed(event):
        arrivals.append(time.perf_counter())
        story(event)

    handle = engine.submit(Target("tailor.tiny"), ChatRequest((Message("user", "Tell me a story."),),
                                                              Sampling(max_tokens=900)), timed)
    try:
        waiting_until = time.monotonic() + 120
        while len(arrivals) < 5 and time.monotonic() < waiting_until:  # decoding has begun
            time.sleep(0.01)
        # 900,000 characters: under max_prompt_characters, about a second of tokenizing, then
        # refused as over the context window.
        began = time.perf_counter()
        final = ask(engine, Target("tailor.tiny"), "word " * 180_000, max_tokens=10).wait()
        ended = time.perf_counter()
        assert isinstance(final, EngineError) and "context window of 1024 tokens" in final.message
        assert not story.done.is_set(), "the story ended too soon to show anything"
    finally:
        handle.cancel()
    # Tokenized in the decoding loop, the story would have stopped for the whole time the long
    # prompt was in the engine; off the loop, its pieces kept coming (gaps of tens of ms at most).
    moments = [began] + [t for t in arrivals if began < t < ended] + [ended]
    longest_gap = max(later - earlier for earlier, later in zip(moments, moments[1:]))
    assert longest_gap < (ended - began) / 3, (longest_gap, ended - began)


def test_a_request_past_its_time_limit_times_out(engine, trained):
    final = ask(engine, Target("tailor.tiny"), "Tell me a story.", max_tokens=1000, timeout_s=0.3).wait()
    assert isinstance(final, EngineError) and final.code == "ModelTimeoutException"


def test_adapters_are_kept_least_recently_used(trained):
    from tailor.settings import Settings

    small = Engine(Settings(home=trained.home), max_adapters=1)
    try:
        first = ask(small, lora_target(trained.lora_a), "Code 3?", max_tokens=12).wait().text
        ask(small, lora_target(trained.lora_b), "Code 3?", max_tokens=12).wait()
        again = ask(small, lora_target(trained.lora_a), "Code 3?", max_tokens=12).wait().text
        assert again == first
        assert small.stats["adapter_loads"] == 3  # a was evicted for b, then loaded again
        started = time.perf_counter()
        small.load(lora_target(trained.lora_b))
        assert time.perf_counter() - started < 5
    finally:
        small.close()


def test_a_model_that_cannot_load_fails_its_request_with_the_reason(engine, tmp_path):
    final = ask(engine, Target(base=str(tmp_path / "missing")), "hi").wait()
    assert isinstance(final, EngineError) and final.code == "ModelErrorException"
    assert "missing" in final.message
