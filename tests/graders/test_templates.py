"""Every shipped template compiles and is a valid grader; the code ones grade samples, the judge
ones ask a real (local) OpenAI-compatible server and never make up a score."""

from __future__ import annotations

import json

import pytest

from tailor.evaluate.judge import REMINDER, judge_conversation
from tailor.graders.contract import read_results, sample
from tailor.graders.registry import check_source
from tailor.graders.sandbox import run_python
from tailor.graders.template_files import (
    TEMPLATES_DIR,
    copy_template,
    template_names,
    template_path,
    template_summary,
)
from tests.graders.conftest import math_record

CODE = ["math_ground_truth", "format_constraints", "generic"]
JUDGES = ["judge_instruction_following", "judge_summarization", "judge_reasoning", "judge_rag_faithfulness"]


def run(name: str, samples: list[dict], environment: dict | None = None, logs: list | None = None):
    return run_python(template_path(name), samples, timeout_seconds=20, memory_mb=1024, environment=environment,
                      log=logs.append if logs is not None else None)


def test_the_templates_are_the_seven_of_the_original_console_and_all_ship():
    assert template_names() == CODE + JUDGES
    assert sorted(path.stem for path in TEMPLATES_DIR.glob("*.py")) == sorted(CODE + JUDGES)


@pytest.mark.parametrize("name", CODE + JUDGES)
def test_every_template_compiles_defines_a_handler_and_says_what_it_is(name):
    source = template_path(name).read_text()
    check_source(source, name)
    assert template_summary(name)
    if name.startswith("judge"):
        assert all(variable in source for variable in ("TAILOR_JUDGE_URL", "TAILOR_JUDGE_MODEL",
                                                        "TAILOR_JUDGE_API_KEY"))


def test_copying_a_template_never_overwrites(tmp_path):
    target = copy_template("generic", tmp_path)
    assert target == tmp_path / "generic.py" and target.read_text() == template_path("generic").read_text()
    with pytest.raises(Exception, match="already exists"):
        copy_template("generic.py", target)
    with pytest.raises(Exception, match="No grader template 'nope'"):
        copy_template("nope", tmp_path / "x.py")


def test_the_format_template_reports_each_constraint():
    record = {"messages": [{"role": "user", "content": "Describe the item as JSON."}],
              "reference_answer": {"name": "lamp", "color": "red"}, "required_keys": ["name", "color"],
              "max_length": 60}
    samples = [sample(record, '```json\n{"name": "Lamp", "color": "blue"}\n```', "fenced"),
               sample(record, '{"name": "lamp"}', "missing-key"),
               sample(record, "a red lamp", "prose"),
               sample(record, json.dumps({"name": "lamp", "color": "red", "notes": "x" * 80}), "long")]
    results = {result.id: result for result in run("format_constraints", samples)}
    assert results["fenced"].metrics == {"valid_json": 1.0, "required_keys": 1.0, "within_length": 1.0,
                                         "field_accuracy": 0.5}
    assert results["fenced"].reward == 1.0
    assert results["missing-key"].metrics["required_keys"] == 0.5
    assert results["prose"].reward == pytest.approx(1 / 3) and results["prose"].metrics["valid_json"] == 0.0
    assert results["long"].metrics["within_length"] == 0.0 and results["long"].metrics["field_accuracy"] == 1.0


def test_the_generic_template_rewards_token_overlap():
    record = math_record("Capital of France?", "Paris is the capital of France")
    samples = [sample(record, "Paris is the capital of France.", "same"), sample(record, "Paris.", "part"),
               sample(record, "Berlin", "wrong"), sample({"messages": []}, "anything", "no-reference")]
    results = {result.id: result for result in run("generic", samples)}
    assert results["same"].reward == 1.0 and results["same"].metrics["exact_match"] == 1.0
    assert 0.0 < results["part"].reward < 1.0
    assert results["wrong"].reward == 0.0 and results["wrong"].error is None
    assert results["no-reference"].error == "lambda_handler raised ValueError: the record has no reference_answer"


def rag_faithfulness_prompt(item: dict) -> str:
    """The prompt the RAG faithfulness template writes for ``item``, from the shipped file itself."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("judge_rag_faithfulness", template_path("judge_rag_faithfulness"))
    template = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(template)
    return template.build_prompt(item)


def rag_record() -> dict:
    return {"messages": [{"role": "user", "content": "When was it founded?"}], "reference_answer": "1999",
            "context": ["The company was founded in 1999.", "It makes lamps."],
            "dialog": [{"speaker": "Ann", "text": "Ship on Friday?"}, {"speaker": "Bo", "text": "Yes."}]}


@pytest.mark.parametrize("name", JUDGES)
def test_an_unreachable_judge_scores_0_with_judge_error(name, closed_port):
    logs: list[str] = []
    environment = {"TAILOR_JUDGE_URL": f"http://127.0.0.1:{closed_port}/v1", "TAILOR_JUDGE_MODEL": "judge"}
    results = run(name, [sample(rag_record(), "In 1999.", "a"), sample(rag_record(), "2001", "b")],
                  environment, logs)
    assert [(result.reward, result.metrics, result.error) for result in results] == \
        [(0.0, {"judge_error": 1.0}, None)] * 2
    assert "sample a: judge error: The judge could not be asked" in logs[0]


def test_a_judge_without_a_model_is_a_judge_error_too(monkeypatch):
    monkeypatch.delenv("TAILOR_JUDGE_MODEL", raising=False)
    logs: list[str] = []
    [result] = run("judge_reasoning", [sample(rag_record(), "1999", "a")], {}, logs)
    assert result.metrics == {"judge_error": 1.0} and "TAILOR_JUDGE_MODEL is not set" in logs[0]


def test_a_judge_rating_becomes_the_reward(http_server):
    """Through a real OpenAI-compatible endpoint: the rating is parsed with evaluation's parser, a
    reply without a rating is asked again once, and one that never has one is a judge_error."""
    def answer(path, body):
        prompt = body["messages"][1]["content"]
        assert path == "/v1/chat/completions" and body["model"] == "the-judge"
        if "In 1999." in prompt:
            reply = "Supported by passage 1.\nRating: 10"
        elif "2001" in prompt and len(body["messages"]) == 2:
            reply = "Contradicts the context."  # no rating: asked again
        elif "2001" in prompt:
            reply = "It contradicts passage 1.\n**Rating: 1/10**"
        else:
            reply = "I will not rate this."
        return 200, json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()

    http_server.respond = answer
    environment = {"TAILOR_JUDGE_URL": f"{http_server.url}/v1", "TAILOR_JUDGE_MODEL": "the-judge",
                   "TAILOR_JUDGE_API_KEY": "secret"}
    samples = [sample(rag_record(), "In 1999.", "good"), sample(rag_record(), "2001", "bad"),
               sample(rag_record(), "Who knows", "unrated")]
    results = {result.id: result for result in run("judge_rag_faithfulness", samples, environment)}
    assert results["good"].reward == 1.0
    assert results["good"].metrics == {"faithfulness": 1.0, "judge_rating": 10.0, "judge_error": 0.0}
    assert results["bad"].reward == 0.0 and results["bad"].metrics["judge_rating"] == 1.0
    assert results["unrated"].reward == 0.0 and results["unrated"].metrics == {"judge_error": 1.0}
    # The samples are asked concurrently: find the first sample's request.
    messages = next(body["messages"] for _, body in http_server.requests if "In 1999." in body["messages"][1]["content"])
    prompt = messages[1]["content"]
    assert "[1] The company was founded in 1999." in prompt and prompt.rstrip().endswith("from 1 to 10.")
    # Asked exactly as evaluation asks its judge metrics: one loop (tailor.evaluate.judge.ask_judge).
    assert messages == judge_conversation(rag_faithfulness_prompt(samples[0]))
    retried = [body["messages"] for _, body in http_server.requests if len(body["messages"]) > 2]
    assert len(retried) == 2 and all(conversation[-1]["content"] == REMINDER for conversation in retried)


def test_judge_results_follow_the_contract():
    from tailor.graders.judging import judge_batch

    item = sample(rag_record(), "x", "a")
    # No model configured: still a well-formed result that read_results accepts.
    [result] = read_results([item], judge_batch([item], lambda s: "prompt", metric="m"))
    assert result.error is None and result.metrics == {"judge_error": 1.0}
