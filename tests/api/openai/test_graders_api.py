"""``client.fine_tuning.alpha.graders.validate`` and ``.run`` against a real server: grader objects
checked by path, and run on one answer (a model judge answering through the server's engine)."""

from __future__ import annotations

import openai
import pytest

STRING_CHECK = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                "reference": "{{item.answer}}", "operation": "eq"}
SIMILAR = {"type": "text_similarity", "name": "close", "input": "{{sample.output_text}}",
           "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"}


def test_validate_and_run_through_the_sdk(server):
    graders = server.openai().fine_tuning.alpha.graders
    assert graders.validate(grader=STRING_CHECK).grader.operation == "eq"

    ran = graders.run(grader=STRING_CHECK, model_sample="Paris", item={"answer": "Paris"})
    assert ran.reward == 1.0 and ran.metadata.type == "string_check" and not ran.metadata.errors.other_error
    assert graders.run(grader=STRING_CHECK, model_sample="Lyon", item={"answer": "Paris"}).reward == 0.0

    multi = {"type": "multi", "name": "both", "graders": {"exact": STRING_CHECK, "close": SIMILAR},
             "calculate_output": "0.5 * exact + 0.5 * close"}
    ran = graders.run(grader=multi, model_sample="Pariss", item={"answer": "Paris"})
    assert ran.sub_rewards["exact"] == 0.0 and 0.8 < ran.sub_rewards["close"] < 1.0
    assert ran.reward == pytest.approx(0.5 * ran.sub_rewards["close"])


def test_a_model_judge_answers_through_the_server(server):
    judge = {"type": "score_model", "name": "judge", "model": "tailor.tiny", "range": [0, 10],
             "input": [{"role": "user", "content": "Rate this answer: {{sample.output_text}}"}]}
    ran = server.openai().fine_tuning.alpha.graders.run(grader=judge, model_sample="Paris")
    # tailor.tiny is no judge: it answers, and what it says either parses into the range or is an error.
    assert 0 <= ran.reward <= 1
    assert ran.reward > 0 or ran.metadata.errors.model_grader_parse_error or ran.metadata.errors.model_grader_server_error


def test_bad_graders_name_the_path(server):
    graders = server.openai().fine_tuning.alpha.graders
    with pytest.raises(openai.BadRequestError) as bad:
        graders.validate(grader={**STRING_CHECK, "operation": "same"})
    assert bad.value.body["param"] == "grader.operation"
    with pytest.raises(openai.BadRequestError) as bad:
        graders.validate(grader={"type": "score_model", "name": "j", "model": "http://evil.example/v1",
                                 "input": [{"role": "user", "content": "x"}]})
    assert bad.value.body["param"] == "grader.model"
    with pytest.raises(openai.BadRequestError) as bad:
        graders.run(grader={"type": "multi", "name": "m", "graders": {"a": STRING_CHECK},
                            "calculate_output": "__import__('os').system('true')"}, model_sample="x")
    assert bad.value.body["param"].startswith("grader.calculate_output")
