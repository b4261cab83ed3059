"""OpenAI's grader objects: validation with paths, templating, string_check, text_similarity, multi
formulas, the run response's shape, and RFT grading through ``registry.grade`` (kind ``openai``)."""

from __future__ import annotations

import math

import pytest

from tailor.graders.contract import sample
from tailor.graders.info import GraderInfo
from tailor.graders.openai import (
    ERROR_FLAGS,
    InvalidGrader,
    evaluate_formula,
    fuzzy_match,
    grader_info,
    render,
    run,
    sample_namespace,
    similarity,
    to_json,
    validate,
)
from tailor.graders.registry import grade
from tailor.train.spec import TrainSpec
from tests.graders.conftest import math_record


def check(operation: str, given: str = "{{ sample.output_text }}", reference: str = "{{ item.answer }}") -> dict:
    return {"type": "string_check", "name": "check", "input": given, "reference": reference, "operation": operation}


def reward(settings, definition: dict, text: str, item: dict | None = None) -> float:
    return run(definition, sample_text=text, item=item or {}, settings=settings)["reward"]


def problems(settings, definition) -> list[tuple[str, str]]:
    with pytest.raises(InvalidGrader) as raised:
        validate(definition, settings)
    return raised.value.problems


# --- string_check -----------------------------------------------------------------------------


@pytest.mark.parametrize(("operation", "text", "expected"), [
    ("eq", "Paris", 1.0), ("eq", "paris", 0.0), ("eq", "Paris.", 0.0),
    ("ne", "Paris", 0.0), ("ne", "Lyon", 1.0),
    ("like", "The capital is Paris.", 1.0), ("like", "The capital is PARIS.", 0.0),
    ("ilike", "The capital is PARIS.", 1.0), ("ilike", "The capital is Lyon.", 0.0),
])
def test_string_check_operations(settings, operation, text, expected):
    assert reward(settings, check(operation), text, {"answer": "Paris"}) == expected


def test_the_run_response_has_the_sdk_shape(settings):
    response = run(check("eq"), sample_text="42", item={"answer": "42"}, settings=settings)
    assert set(response) == {"reward", "metadata", "sub_rewards", "model_grader_token_usage_per_model"}
    assert response["reward"] == 1.0
    metadata = response["metadata"]
    assert {"name", "type", "errors", "execution_time", "scores", "token_usage", "sampled_model_name"} <= set(metadata)
    assert metadata["name"] == "check" and metadata["type"] == "string_check"
    assert metadata["execution_time"] >= 0
    assert all(metadata["errors"][flag] is False for flag in ERROR_FLAGS)
    assert response["sub_rewards"] == {} and response["model_grader_token_usage_per_model"] == {}


# --- templating --------------------------------------------------------------------------------


def test_templates_reach_nested_item_fields_and_the_samples_json():
    namespaces = {"item": {"a": {"b": [{"c": "deep"}, 7]}, "n": 3, "tags": ["x", "y"]},
                  "sample": sample_namespace('{"answer": {"value": 42}, "ok": true}')}
    assert render("{{item.a.b[0].c}} {{ item.a.b.1 }} {{item.n}} {{item.tags}}", namespaces) == 'deep 7 3 ["x", "y"]'
    assert render("{{sample.output_json.answer.value}}/{{sample.output_json.ok}}", namespaces) == "42/true"
    assert render("{{sample.output_tools}}", namespaces) == "[]"
    assert render("no templates {here}", namespaces) == "no templates {here}"


def test_a_missing_item_field_is_an_explained_zero_not_an_empty_string(settings):
    response = run(check("eq", reference="{{ item.missing }}"), sample_text="", item={"answer": ""}, settings=settings)
    assert response["reward"] == 0.0
    assert response["metadata"]["errors"]["other_error"] is True
    assert "item.missing" in response["metadata"]["errors"]["details"]


def test_output_json_of_a_sample_that_is_not_json_is_a_sample_parse_error(settings):
    definition = check("eq", given="{{ sample.output_json.answer }}", reference="42")
    assert reward(settings, definition, '{"answer": "42"}') == 1.0
    response = run(definition, sample_text="forty-two", item={}, settings=settings)
    assert response["reward"] == 0.0 and response["metadata"]["errors"]["sample_parse_error"] is True


# --- validation ----------------------------------------------------------------------------------


def test_validation_names_the_path_of_every_bad_field(settings):
    found = problems(settings, {
        "type": "multi", "name": "m", "calculate_output": "a + zz", "surprise": 1,
        "graders": {
            "a": {"type": "string_check", "name": "a", "input": "{{ sample.nope }}", "reference": "x",
                  "operation": "equals"},
            "b": {"type": "text_similarity", "name": "b", "input": "x", "reference": "y", "evaluation_metric": "bleurt"},
            "c": {"type": "score_model", "name": "c", "model": "https://judge.example.com/v1",
                  "input": [{"role": "user", "content": "rate {{ item.q }}"}]},
            "d": {"type": "label_model", "name": "d", "model": "tailor.tiny", "input": [{"role": "user", "content": "?"}],
                  "labels": ["good", "bad"], "passing_labels": ["great"]},
            "e": {"type": "python", "name": "e", "source": "def score(sample):\n    return 1\n"},
            "f": {"type": "multi", "name": "f", "graders": {}, "calculate_output": "1"},
        }})
    paths = {path for path, _ in found}
    assert {"grader.surprise", "grader.calculate_output", "grader.graders.a.operation", "grader.graders.a.input",
            "grader.graders.b.evaluation_metric", "grader.graders.c.model", "grader.graders.d",
            "grader.graders.e.source", "grader.graders.f.type"} <= paths
    messages = dict(found)
    assert "zz" in messages["grader.calculate_output"]
    assert "grade(sample, item)" in messages["grader.graders.e.source"]
    assert "another multi" in messages["grader.graders.f.type"]
    assert "operator-configured remote model" in messages["grader.graders.c.model"]


@pytest.mark.parametrize(("definition", "path"), [
    ([], "grader"),
    ({"name": "x"}, "grader.type"),
    ({"type": "regex", "name": "x"}, "grader.type"),
    ({"type": "string_check", "name": "x", "input": "a", "reference": "b"}, "grader.operation"),
    ({"type": "score_model", "name": "s", "model": "tailor.tiny", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "https://example.com/cat.png"}]}]}, "grader.input[0].content"),
    ({"type": "score_model", "name": "s", "model": "tailor.tiny", "range": [1, 0],
      "input": [{"role": "user", "content": "x"}]}, "grader.range"),
    ({"type": "score_model", "name": "s", "model": "tailor.tiny", "input": [{"role": "robot", "content": "x"}]},
     "grader.input[0].role"),
    ({"type": "score_model", "name": "s", "model": "/etc", "input": [{"role": "user", "content": "x"}]},
     "grader.model"),
    ({"type": "python", "name": "p", "source": "def grade(sample, item):\n    return (\n"}, "grader.source"),
    ({"type": "python", "name": "p", "source": "x = 1\n" * 50000 + "def grade(s, i):\n    return 1\n"},
     "grader.source"),
    ({"type": "multi", "name": "m", "graders": {"a": check("eq")}, "calculate_output": "a.__class__"},
     "grader.calculate_output"),
    ({"type": "multi", "name": "m", "graders": {"a": check("eq")}, "calculate_output": "__import__('os')"},
     "grader.calculate_output"),
    ({"type": "multi", "name": "m", "graders": {"a": check("eq")}, "calculate_output": "(" * 400 + "a" + ")" * 400},
     "grader.calculate_output"),
    ({"type": "multi", "name": "m", "graders": {"a": check("eq")}, "calculate_output": "a + " * 300 + "a"},
     "grader.calculate_output"),
    ({"type": "multi", "name": "m", "graders": {"a": check("eq")}, "calculate_output": "a if a else 1"},
     "grader.calculate_output"),
    ({"type": "multi", "name": "m", "graders": {"sqrt": check("eq")}, "calculate_output": "sqrt"},
     "grader.graders.sqrt"),
])
def test_one_bad_field_is_reported_at_its_path(settings, definition, path):
    assert path in [where for where, _ in problems(settings, definition)]


def test_a_valid_grader_comes_back_normalized(settings):
    grader = validate({"type": "score_model", "name": "judge", "model": "tailor.tiny",
                       "input": [{"role": "developer", "content": [{"type": "input_text", "text": "Rate "},
                                                                   {"type": "input_text", "text": "it."}]},
                                 {"role": "user", "content": "{{ sample.output_text }}", "type": "message"}],
                       "sampling_params": {"temperature": 0.2, "seed": 7}}, settings)
    assert to_json(grader) == {
        "type": "score_model", "name": "judge", "model": "tailor.tiny", "range": [0.0, 1.0],
        "input": [{"role": "developer", "content": "Rate it."},
                  {"role": "user", "content": "{{ sample.output_text }}", "type": "message"}],
        "sampling_params": {"temperature": 0.2, "seed": 7}}
    assert validate(to_json(grader), settings) == grader


def test_an_operator_configured_remote_model_may_judge_but_an_unconfigured_name_may_not(tmp_path):
    from tailor.settings import Settings

    settings = Settings(home=tmp_path, remote_models={"house-judge": {"api": "openai", "model": "m",
                                                                      "url": "http://127.0.0.1:9/v1"}})
    judged = {"type": "label_model", "name": "l", "input": [{"role": "user", "content": "?"}],
              "labels": ["a", "b"], "passing_labels": ["a"]}
    validate({**judged, "model": "house-judge"}, settings)
    assert [path for path, _ in problems(settings, {**judged, "model": "gpt-4o"})] == ["grader.model"]


# --- text_similarity ------------------------------------------------------------------------------

HYPOTHESIS, REFERENCE = "the cat sat on mat", "the cat sat on the mat"


@pytest.mark.parametrize(("metric", "expected"), [
    # Worked by hand: 1-4-gram precisions 5/5, 3/4, 2/3, 1/2; brevity penalty exp(1 - 6/5).
    ("bleu", math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25),
    # GLEU: 11 shared 1-4-grams of 14 in the hypothesis and 18 in the reference; the minimum.
    ("gleu", 11 / 18),
    # ROUGE-N F-measures: 3-grams 2 of 3 and 2 of 4, 4-grams 1 of 2 and 1 of 3, no shared 5-gram.
    ("rouge_1", 2 * 1 * (5 / 6) / (1 + 5 / 6)), ("rouge_2", 2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5)),
    ("rouge_3", 2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4)), ("rouge_4", 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3)),
    ("rouge_5", 0.0), ("rouge_l", 2 * 1 * (5 / 6) / (1 + 5 / 6)),
    # fuzzy: processed lengths 18 and 22, the shorter is a subsequence of the longer: 2 * 18 / 40.
    ("fuzzy_match", 36 / 40),
])
def test_text_similarity_metrics_match_known_figures(metric, expected):
    assert similarity(metric, HYPOTHESIS, REFERENCE) == pytest.approx(expected, abs=1e-9)


def test_meteor_counts_exact_and_stem_matches_with_its_fragmentation_penalty():
    # Identical 6-word sentences: one chunk, penalty 0.5 * (1/6)^3.
    assert similarity("meteor", REFERENCE, REFERENCE) == pytest.approx(1 - 0.5 / 216)
    # "cats" meets "cat" through the stemmer; no synonyms are used.
    assert similarity("meteor", "the cats sat", "the cat sat") == similarity("meteor", "the cat sat", "the cat sat")


def test_fuzzy_match_is_rapidfuzz_ratio_on_processed_text():
    assert fuzzy_match("kitten", "sitting") == pytest.approx(2 * 4 / 13)
    assert fuzzy_match("This is a test!", "this is a test") == 1.0
    assert fuzzy_match("", "") == 1.0 and fuzzy_match("abc", "") == 0.0
    long_text = "lorem ipsum dolor " * 300  # bit-parallel: thousands of characters stay fast
    assert fuzzy_match(long_text, long_text[::-1]) < 1.0


def test_identical_texts_score_one_on_every_lexical_metric():
    for metric in ("bleu", "gleu", "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l", "fuzzy_match"):
        text = "one two three four five six seven"
        assert similarity(metric, text, text) == pytest.approx(1.0), metric


def test_cosine_uses_the_bundled_sentence_encoder(settings):
    definition = {"type": "text_similarity", "name": "cos", "input": "{{ sample.output_text }}",
                  "reference": "{{ item.reference_answer }}", "evaluation_metric": "cosine"}
    same = reward(settings, definition, "The cat sat on the mat.", {"reference_answer": "The cat sat on the mat."})
    related = reward(settings, definition, "A cat was sitting on a rug.", {"reference_answer": "The cat sat on the mat."})
    unrelated = reward(settings, definition, "Quarterly revenue rose 4%.", {"reference_answer": "The cat sat on the mat."})
    assert same == pytest.approx(1.0, abs=1e-4)
    assert 1.0 > related > unrelated


# --- multi -----------------------------------------------------------------------------------------


def test_formulas_combine_with_arithmetic_and_the_known_functions():
    values = {"a": 1.0, "b": 0.25}
    assert evaluate_formula("0.5 * a + 0.5 * b", values) == 0.625
    assert evaluate_formula("b ^ 2 + b ** 2", values) == 0.125
    assert evaluate_formula("min(a, b) + max(a, b, 3) - abs(-b)", values) == 3.0
    assert evaluate_formula("sqrt(b) + log(exp(2)) + floor(2.7) + ceil(0.1) + log(8, 2)", values) == pytest.approx(8.5)
    assert evaluate_formula("-(a - 3) / 4", values) == 0.5


@pytest.mark.parametrize("formula", ["a / (b - b)", "sqrt(-1)", "log(0)", "10 ** 1000", "exp(1000)",
                                     "sqrt((0 - 8) ^ 0.5)", "1e300 ** 2"])
def test_a_formula_that_cannot_be_computed_is_an_error_not_a_crash(settings, formula):
    definition = {"type": "multi", "name": "m", "calculate_output": formula,
                  "graders": {"a": check("eq", reference="x"), "b": check("ilike", reference="x")}}
    response = run(definition, sample_text="x", item={}, settings=settings)
    assert response["reward"] == 0.0 and response["metadata"]["errors"]["other_error"] is True


def test_multi_reports_each_graders_reward(settings):
    definition = {"type": "multi", "name": "combined", "calculate_output": "0.75 * exact + 0.25 * similar",
                  "graders": {"exact": check("eq"),
                              "similar": {"type": "text_similarity", "name": "similar", "input": "{{sample.output_text}}",
                                          "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"}}}
    response = run(definition, sample_text="kitten", item={"answer": "sitting"}, settings=settings)
    assert response["sub_rewards"] == response["metadata"]["scores"] == {"exact": 0.0,
                                                                         "similar": pytest.approx(8 / 13)}
    assert response["reward"] == pytest.approx(0.25 * 8 / 13)
    assert response["metadata"]["type"] == "multi"


def test_the_sdks_single_grader_form_of_graders_is_named_by_its_name(settings):
    definition = {"type": "multi", "name": "m", "calculate_output": "2 * check", "graders": check("eq")}
    assert reward(settings, definition, "42", {"answer": "42"}) == 2.0


def test_a_failing_member_makes_the_multi_reward_an_explained_zero(settings):
    definition = {"type": "multi", "name": "m", "calculate_output": "a + b",
                  "graders": {"a": check("eq"), "b": check("eq", reference="{{ item.absent }}")}}
    response = run(definition, sample_text="42", item={"answer": "42"}, settings=settings)
    assert response["reward"] == 0.0
    assert response["metadata"]["errors"]["other_error"] is True
    assert "b: " in response["metadata"]["errors"]["details"]


# --- RFT: registry.grade and the job spec -----------------------------------------------------------


def test_registry_grade_dispatches_an_openai_grader_over_the_rft_batch(settings):
    definition = {"type": "multi", "name": "math", "calculate_output": "0.8 * right + 0.2 * shaped",
                  "graders": {"right": check("like", reference="{{ item.reference_answer }}"),
                              "shaped": check("like", reference="{{ item.task_id }}")}}
    info = grader_info(definition, settings)
    assert info.kind == "openai" and info.name == "math" and info.definition == to_json(validate(definition, settings))
    batch = [sample(math_record("6 x 7?", "42"), "It is 42.", "s0"),
             sample(math_record("6 x 7?", "42"), "6 x 7? It is 41.", "s1"),
             sample({"messages": [{"role": "user", "content": "?"}]}, "42", "s2")]
    results = grade(info, batch, settings)
    assert [(result.id, result.reward) for result in results] == [("s0", 0.8), ("s1", 0.2), ("s2", 0.0)]
    assert results[0].metrics == {"right": 1.0, "shaped": 0.0} and results[0].error is None
    assert results[2].error and "reference_answer" in results[2].error  # contract.failed: a zero with its reason


def test_the_item_is_the_record_with_its_prompt_messages(settings):
    definition = check("eq", given="{{ item.messages[0].content }}|{{ item.task_id }}", reference="Solve it.|q1")
    record = {**math_record("q", "a"), "task_id": "q1"}
    [result] = grade(grader_info(definition, settings), [sample(record, "anything", "s")], settings)
    assert (result.reward, result.error) == (1.0, None)


def test_an_openai_grader_info_round_trips_through_the_train_spec_json(settings, tmp_path):
    info = grader_info({"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1.0\n"},
                       settings)
    spec = TrainSpec("REINFORCEMENT_FINE_TUNING", "tailor.tiny", "s3://bucket/train.jsonl", tmp_path / "out",
                     grader=info)
    back = TrainSpec.from_json(spec.to_json())
    assert back.grader == info and isinstance(back.grader, GraderInfo)
    assert back.grader.definition["source"].startswith("def grade")
    assert info.summary()["kind"] == "openai" and info.summary()["graderType"] == "python"
    assert "source" not in str(info.summary())


def test_a_definition_that_went_bad_grades_every_sample_zero_with_the_reason(settings):
    info = grader_info(check("eq"), settings)
    broken = GraderInfo(**{**info.__dict__, "definition": {"type": "string_check", "name": "x"}})
    results = grade(broken, [sample(math_record("q", "a"), "a", "s0")], settings)
    assert results[0].reward == 0.0 and "grader.operation" in results[0].error
