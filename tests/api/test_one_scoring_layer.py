"""One scoring layer: a metric in a Bedrock evaluation, an OpenAI Evals testing criterion and a
reinforcement fine-tuning reward with the same definition give the same number for the same answer.

The definitions: ROUGE-L (Bedrock's ``RougeL`` metric, the ``text_similarity`` grader's ``rouge_l``)
and the custom metric FACTUAL (``tests/conftest.py``), judged by the test judge, which becomes the
``score_model`` grader ``factual_grader()``. The answers: the four taught answers and the base
model's answers. The doors: a Bedrock job over precomputed responses (boto3), an Evals run over a
``jsonl`` data source (the openai client), the RFT reward (``client.fine_tuning.alpha.graders.run``
and, in this process, ``registry.grade``: the call a reinforcement job makes for every rollout).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.api.conftest import ALIASES, running_server
from tests.api.test_evaluation_extensions import outputs, request, source
from tests.api.test_evaluations import wait_for
from tests.conftest import FACTUAL, JUDGE_ALIAS, factual_grader

pytestmark = pytest.mark.slow
ROUGE = {"type": "text_similarity", "name": "RougeL", "evaluation_metric": "rouge_l",
         "input": "{{sample.output_text}}", "reference": "{{item.referenceResponse}}"}


def test_a_metric_a_testing_criterion_and_a_reward_give_the_same_number(home, evaluation, factual_judge,
                                                                         monkeypatch):
    questions = evaluation.questions
    answers = {"taught": [q.reference for q in questions], "base": list(evaluation.base_answers)}
    with running_server(home, {**ALIASES, JUDGE_ALIAS: str(factual_judge / "model")}) as server:
        # Bedrock: both sets of answers as precomputed sources, RougeL and the custom metric.
        lines = [{"prompt": q.prompt, "referenceResponse": q.reference,
                  "modelResponses": [{"response": answers[name][i], "modelIdentifier": name} for name in answers]}
                 for i, q in enumerate(questions)]
        data = server.put("s3://evals/answers.jsonl", lines)
        custom = {"customMetrics": [{"customMetricDefinition": FACTUAL}],
                  "evaluatorModelConfig": {"bedrockEvaluatorModels": [{"modelIdentifier": JUDGE_ALIAS}]}}
        bedrock = server.client()
        arn = bedrock.create_evaluation_job(**request("one-layer", data, [source(name) for name in answers],
                                                      ["RougeL", "Factual"], custom))["jobArn"]

        # Evals: the same answers as jsonl samples, the same two definitions as criteria.
        client = server.openai()
        schema = {"type": "object", "properties": {"prompt": {"type": "string"}, "referenceResponse": {"type": "string"}}}
        ev = client.evals.create(data_source_config={"type": "custom", "item_schema": schema},
                                 testing_criteria=[{**ROUGE, "pass_threshold": 0.5},
                                                   {**factual_grader(), "pass_threshold": 0.5}])
        rows = [(name, q, answer) for name in answers for q, answer in zip(questions, answers[name])]
        run = client.evals.runs.create(ev.id, data_source={"type": "jsonl", "source": {"type": "file_content", "content": [
            {"item": {"prompt": q.prompt, "referenceResponse": q.reference}, "sample": {"output_text": answer}}
            for _, q, answer in rows]}})

        # RFT, through the API: the grader as a reinforcement job would run it.
        rft_api = {(name, grader["name"]): [client.fine_tuning.alpha.graders.run(
            grader=grader, model_sample=answer, item={"prompt": q.prompt, "referenceResponse": q.reference}).reward
            for q, answer in zip(questions, answers[name])] for name in answers for grader in (ROUGE, factual_grader())}

        done = wait_for(bedrock, arn)
        assert done["status"] == "Completed", done.get("failureMessages")
        bedrock_scores = {}
        for name in answers:
            for line in outputs(server, arn, "one-layer", name):
                for score in line["automatedEvaluationResult"]["scores"]:
                    bedrock_scores.setdefault((name, score["metricName"]), []).append(score.get("result"))
        evals_scores = {}
        deadline = time.monotonic() + 300
        while client.evals.runs.retrieve(run.id, eval_id=ev.id).status not in ("completed", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        for (name, _, _), item in zip(rows, client.evals.runs.output_items.list(run.id, eval_id=ev.id)):
            for result in item.results:
                evals_scores.setdefault((name, result.name), []).append(result.score)

    # RFT, in this process: the reward function a reinforcement job calls for each rollout.
    monkeypatch.setenv("TAILOR_MODEL_ALIASES", json.dumps({JUDGE_ALIAS: str(factual_judge / "model")}))
    from tailor.graders import contract, registry
    from tailor.graders.openai import close_judges, grader_info
    from tailor.settings import Settings

    settings = Settings(home=home)
    rft_rewards = {}
    try:
        for grader in (ROUGE, factual_grader()):
            info = grader_info(grader, settings)
            for name in answers:
                samples = [contract.sample({"messages": [{"role": "user", "content": q.prompt}], "prompt": q.prompt,
                                            "referenceResponse": q.reference}, answer, f"{name}-{i}")
                           for i, (q, answer) in enumerate(zip(questions, answers[name]))]
                rft_rewards[(name, grader["name"])] = [r.reward for r in registry.grade(info, samples, settings)]
    finally:
        close_judges()

    for key, rewards in rft_rewards.items():
        print(key, "bedrock", bedrock_scores[key], "evals", evals_scores[key], "rft", rewards, "api", rft_api[key])
        assert bedrock_scores[key] == pytest.approx(rewards) and evals_scores[key] == pytest.approx(rewards)
        assert rft_api[key] == pytest.approx(rewards)
    # The judge tells the answers apart, so the equality is not all zeros.
    assert rft_rewards[("taught", "Factual")] == [1.0] * 4 and rft_rewards[("base", "Factual")] == [0.0] * 4
