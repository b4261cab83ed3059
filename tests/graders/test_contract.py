"""The Lambda contract: what a grader receives, and reading what it returns (pure, no process)."""

from __future__ import annotations

import math

from tailor.graders.contract import (
    GradeResult,
    completion_of,
    field_of,
    prompt_of,
    read_results,
    reference_of,
    sample,
)

RECORD = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "6 x 7?"}],
          "reference_answer": {"answer": 42}, "task_id": "t-1", "domain": "math"}


def batch(*ids: str) -> list[dict]:
    return [sample(RECORD, f"answer {i}", i) for i in ids]


def test_a_sample_is_the_record_with_the_answer_appended_and_the_reference_in_both_places():
    item = sample(RECORD, "42", "s-0")
    assert item == {
        "id": "s-0",
        "messages": [*RECORD["messages"], {"role": "assistant", "content": "42"}],
        "metadata": {"reference_answer": {"answer": 42}, "task_id": "t-1", "domain": "math"},
        "reference_answer": {"answer": 42},
    }
    assert len(RECORD["messages"]) == 2  # the record is not changed
    assert completion_of(item) == "42" and prompt_of(item) == RECORD["messages"]
    assert reference_of(item) == {"answer": 42} and field_of(item, "task_id") == "t-1"
    # Graders written for either placement read the reference.
    assert reference_of({"reference_answer": "7"}) == "7"
    assert reference_of({"metadata": {"reference_answer": "8"}}) == "8"
    assert completion_of({"messages": [{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]}) == "hi"


def test_results_are_aligned_by_id_whatever_their_order():
    returned = [
        {"id": "b", "aggregate_reward_score": 0.25, "reward_components": {"x": 1}},
        {"id": "a", "aggregate_reward_score": 1, "metrics_list": [
            {"name": "accuracy", "value": 0.9, "type": "Reward"}, {"name": "style", "value": 1, "type": "Metric"}]},
    ]
    assert read_results(batch("a", "b"), returned) == [
        GradeResult("a", 1.0, {"accuracy": 0.9, "style": 1.0}, None),
        GradeResult("b", 0.25, {}, None),
    ]


def test_each_defect_zeroes_only_its_sample_and_says_what_was_wrong():
    samples = batch("ok", "nan", "text", "bool", "no-score", "bad-metric", "bad-type", "missing")
    returned = [
        {"id": "ok", "aggregate_reward_score": 0.5},
        {"id": "nan", "aggregate_reward_score": math.nan},
        {"id": "text", "aggregate_reward_score": "high"},
        {"id": "bool", "aggregate_reward_score": True},
        {"id": "no-score", "score": 1},
        {"id": "bad-metric", "aggregate_reward_score": 1, "metrics_list": [{"name": "x", "value": None}]},
        {"id": "bad-type", "aggregate_reward_score": 1, "metrics_list": [{"name": "x", "value": 1, "type": "Cost"}]},
        "not an object",
        {"id": "stranger", "aggregate_reward_score": 1},
    ]
    results = {result.id: result for result in read_results(samples, returned)}
    assert results["ok"] == GradeResult("ok", 0.5, {}, None)
    assert all(result.reward == 0.0 and result.error for key, result in results.items() if key != "ok")
    assert "nan" in results["nan"].error and "not a finite number" in results["nan"].error
    assert "'high'" in results["text"].error
    assert "True" in results["bool"].error
    assert "no \"aggregate_reward_score\"" in results["no-score"].error
    assert "metrics_list[0] (x): value is None" in results["bad-metric"].error
    assert "type is 'Cost'" in results["bad-type"].error
    missing = results["missing"].error
    assert "no result for id 'missing'" in missing
    assert "item 7 is 'not an object'" in missing and "'stranger', which is not in the batch" in missing


def test_a_return_that_is_not_a_list_zeroes_the_whole_batch():
    for garbage in ({"id": "a", "aggregate_reward_score": 1}, None, "1.0", 3):
        results = read_results(batch("a", "b"), garbage)
        assert [result.reward for result in results] == [0.0, 0.0]
        assert all("not a list of results" in result.error for result in results)


def test_a_duplicated_id_is_an_error_not_a_choice():
    results = read_results(batch("a"), [{"id": "a", "aggregate_reward_score": 1},
                                        {"id": "a", "aggregate_reward_score": 0}])
    assert results[0].reward == 0.0 and "more than one result" in results[0].error
