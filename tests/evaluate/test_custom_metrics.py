"""Custom metrics as OpenAI grader definitions, and precomputed answers in a dataset: the pure parts
(the mapping, the results, the dataset checks), then the whole scoring path through Tailor's real
grader layer with a scripted judge (a fake backend is fine here: the judge's words are the input)."""

from __future__ import annotations

import json

import pytest

from tailor.errors import InvalidInput
from tailor.evaluate.backends import Generation, Recorded
from tailor.evaluate.dataset import load_questions
from tailor.evaluate.judge import (
    custom_grader,
    custom_instruction_problems,
    custom_result,
    custom_uses_reference,
)
from tailor.evaluate.metrics import exact_match
from tailor.evaluate.run import compare
from tailor.evaluate.spec import (
    CustomMetric,
    EvaluationSpec,
    ModelToRun,
    RatingScaleItem,
)
from tailor.settings import Settings

INSTRUCTIONS = "Question: {{prompt}}\nReference: {{ ground_truth }}\nResponse: {{prediction}}\nRate it."
FIVE = tuple(RatingScaleItem(f"level {value}", float(value)) for value in (1, 2, 3, 4, 5))
WORDS = (RatingScaleItem("fully right", "Good"), RatingScaleItem("partly right", "Fair"),
         RatingScaleItem("wrong", "Poor"))


def test_a_number_scale_is_a_score_model_grader_over_its_range():
    grader = custom_grader(CustomMetric("Accuracy-5", INSTRUCTIONS, FIVE), "judge-model")
    assert grader == {
        "type": "score_model", "name": "Accuracy-5", "model": "judge-model", "range": [1.0, 5.0],
        "input": [{"role": "user", "content": (
            "Question: {{item.prompt}}\nReference: {{item.referenceResponse}}\nResponse: {{sample.output_text}}\n"
            "Rate it.\n\nRating scale:\nlevel 1 = 1\nlevel 2 = 2\nlevel 3 = 3\nlevel 4 = 4\nlevel 5 = 5")}]}
    assert custom_grader(CustomMetric("plain", "{{prediction}}"), "m")["range"] == [0.0, 1.0]


def test_a_word_scale_is_a_label_model_grader():
    grader = custom_grader(CustomMetric("tone", "Rate {{prediction}}", WORDS), "m")
    assert grader["type"] == "label_model" and grader["labels"] == ["Good", "Fair", "Poor"]
    assert grader["passing_labels"] == ["Good"]
    assert grader["input"][0]["content"].endswith("Rating scale:\nfully right = Good\npartly right = Fair\nwrong = Poor")


def test_results_snap_to_the_scale_or_take_the_words_place():
    five = CustomMetric("m", "{{prediction}}", FIVE)
    assert [custom_result(five, number) for number in (1.0, 2.4, 2.5, 4.9, 3.0)] == [1.0, 2.0, 2.0, 5.0, 3.0]
    words = CustomMetric("m", "{{prediction}}", WORDS)
    assert [custom_result(words, 0.0, label) for label in ("Good", "fair", "Poor")] == [1.0, 0.5, 0.0]
    assert custom_result(CustomMetric("m", "{{prediction}}", WORDS[:1]), 1.0, "Good") == 1.0
    assert custom_result(CustomMetric("m", "{{prediction}}"), 0.37) == 0.37


def test_instructions_take_only_the_three_variables_and_need_the_prediction():
    assert custom_instruction_problems(INSTRUCTIONS) == []
    problems = custom_instruction_problems("Context: {{context}} {{prompt}}")
    assert problems[0].startswith("unknown variable {{context}}") and "{{prediction}}" in problems[1]
    assert custom_uses_reference(CustomMetric("m", INSTRUCTIONS))
    assert not custom_uses_reference(CustomMetric("m", "{{prediction}}"))


def _write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def test_precomputed_answers_are_read_and_every_bad_line_named(tmp_path):
    good = {"prompt": "2+2?", "referenceResponse": "4",
            "modelResponses": [{"response": "4", "modelIdentifier": "a"}, {"response": "5", "modelIdentifier": "b"}]}
    [question] = load_questions(_write(tmp_path / "ok.jsonl", [good]), precomputed=("a", "b"))
    assert question.responses == {"a": "4", "b": "5"} and "modelResponses" not in question.record

    lines = [good,
             {"prompt": "no answers"},
             {"prompt": "x", "modelResponses": [{"response": "1", "modelIdentifier": "c"},
                                                {"response": "2", "modelIdentifier": "b"}]},
             {"prompt": "x", "modelResponses": [{"modelIdentifier": "a"}, {"response": "2", "modelIdentifier": "b"}]},
             {"prompt": "x", "modelResponses": [{"response": "1", "modelIdentifier": "a"}]},
             {"prompt": "x", "modelResponses": [{"response": "1", "modelIdentifier": "a"},
                                                {"response": "2", "modelIdentifier": "a"}]}]
    with pytest.raises(InvalidInput) as refused:
        load_questions(_write(tmp_path / "bad.jsonl", lines), precomputed=("a", "b"))
    message = refused.value.message
    assert "bad.jsonl: line 2: modelResponses: required" in message
    assert "line 3: modelResponses[0].modelIdentifier: 'c' names no precomputed inference source" in message
    assert "line 4: modelResponses[0].response: required key is missing" in message
    assert "line 5: modelResponses: no response from b" in message
    assert "line 6: modelResponses[1].modelIdentifier: a second response from 'a'" in message
    assert "line 1:" not in message

    with pytest.raises(InvalidInput, match=r"line 1: modelResponses: this job has no precomputedInferenceSource"):
        load_questions(_write(tmp_path / "models.jsonl", [good]))


class ScriptedJudge:
    """A judge whose replies are given: the grader layer around it is the real one."""

    label = "judge"

    def __init__(self, replies):
        self.replies, self.asked = list(replies), []

    def chat(self, conversations, generation, on_reply=None):
        self.asked += conversations
        return [self.replies.pop(0) for _ in conversations]


def test_answers_given_with_the_data_are_scored_by_the_grader_layer(tmp_path):
    from tailor.jobs.evaluation import custom_scorers

    settings = Settings(home=tmp_path / "home")
    data = _write(tmp_path / "data.jsonl", [
        {"prompt": "Capital of France?", "referenceResponse": "Paris",
         "modelResponses": [{"response": "Paris", "modelIdentifier": "mine"}]},
        {"prompt": "Capital of Spain?", "referenceResponse": "Madrid",
         "modelResponses": [{"response": "Lisbon", "modelIdentifier": "mine"}]}])
    questions = load_questions(data, settings, precomputed=("mine",))
    metrics = (CustomMetric("five", INSTRUCTIONS, FIVE), CustomMetric("words", "Judge {{prediction}}", WORDS))
    spec = EvaluationSpec(datasets=(), models=(ModelToRun("mine", precomputed=True),),
                          custom_metrics=metrics, custom_judge=ModelToRun("tailor.tiny"))
    judge = ScriptedJudge(["Close to the reference.\nScore: 4.6", "Wrong city.\nScore: 1.2",
                           "It is right.\nLabel: Good", "no idea", "still no idea"])
    scorers = custom_scorers(spec, settings)(judge)
    source = Recorded("mine", tuple(q.responses["mine"] for q in questions))
    comparison = compare(questions, [source], ["ExactMatch", "five", "words"], settings=settings, progress=False,
                         generation=Generation(), custom_scores=scorers)

    first, second = (row.answers[0] for row in comparison.rows)
    assert [first.response, second.response] == ["Paris", "Lisbon"]
    assert first.score("ExactMatch").value == exact_match("Paris", "Paris") == 1.0
    assert (first.score("five").value, second.score("five").value) == (5.0, 1.0)
    assert first.score("five").explanation == "Close to the reference.\nScore: 4.6"
    assert first.score("words").value == 1.0 and first.score("words").explanation.startswith("Good: ")
    assert second.score("words").value is None and "no parsable label" in second.score("words").explanation
    assert "still no idea" in second.score("words").explanation
    # The judge read the converted instructions, filled in by the grader layer's templates.
    assert judge.asked[0][0]["content"].startswith(
        "Question: Capital of France?\nReference: Paris\nResponse: Paris\nRate it.\n\nRating scale:\nlevel 1 = 1")
