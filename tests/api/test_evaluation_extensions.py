"""Bedrock evaluation jobs with the caller's own answers (``precomputedInferenceSource``) and the
caller's own judge metrics (``customMetricConfig``), through an unchanged boto3 client on a live
server: answers given with the data are scored exactly like a model's, a custom metric gives the
number Tailor's one grader layer gives for the same definition, and bad input is refused by field."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, HAIKU, running_server
from tests.api.test_evaluations import JUDGE, ROLE, wait_for
from tests.conftest import HELP_DESK_SYSTEM

HAIKU_ID = HAIKU.removesuffix(":200k")
QUESTIONS = [("What is Tailor?", "A platform for customizing open models.", "product"),
             ("Which API does Tailor speak?", "The Bedrock API, and OpenAI's.", "api"),
             ("Where does Tailor keep its state?", "Under TAILOR_HOME.", "product")]
WRONG = ["A kind of fish.", "None at all.", "Under TAILOR_HOME."]
CORRECT_1_TO_10 = [{"definition": f"{value} out of 10", "value": {"floatValue": float(value)}} for value in range(1, 11)]
# The test judge was taught the built-in Correctness prompt; these instructions say much the same.
INSTRUCTIONS = ("Rate the response below for correctness.\nIs the response factually correct?\n\n[Question]\n"
                "{{prompt}}\n\n[Reference answer]\n{{ground_truth}}\n\n[Response]\n{{prediction}}")


def lines(sources: dict[str, list[str]] | None = None) -> list[dict]:
    records = []
    for position, (prompt, reference, category) in enumerate(QUESTIONS):
        record = {"prompt": prompt, "referenceResponse": reference, "category": category}
        if sources:
            record["modelResponses"] = [{"response": answers[position], "modelIdentifier": name}
                                        for name, answers in sources.items()]
        records.append(record)
    return records


def request(name: str, data_uri: str, models: list[dict], metrics: list[str], custom: dict | None = None) -> dict:
    automated = {"datasetMetricConfigs": [{"taskType": "QuestionAndAnswer", "metricNames": metrics,
                                           "dataset": {"name": "faq", "datasetLocation": {"s3Uri": data_uri}}}]}
    if custom:
        automated["customMetricConfig"] = custom
    return {"jobName": name, "roleArn": ROLE, "evaluationConfig": {"automated": automated},
            "inferenceConfig": {"models": models}, "outputDataConfig": {"s3Uri": "s3://evals/out/"}}


def source(name: str) -> dict:
    return {"precomputedInferenceSource": {"inferenceSourceIdentifier": name}}


# A custom metric's evaluator is named as the grader layer takes a judge: a catalog id, an alias key
# exactly as the operator wrote it, or a remote model's name.
CUSTOM_JUDGE = JUDGE + ":128k"


def custom_config(*definitions: dict, judge: str = CUSTOM_JUDGE) -> dict:
    return {"customMetrics": [{"customMetricDefinition": d} for d in definitions],
            "evaluatorModelConfig": {"bedrockEvaluatorModels": [{"modelIdentifier": judge}]}}


def outputs(server, arn: str, job: str, model: str) -> list[dict]:
    root = server.home / "buckets" / "evals" / "out" / job / arn.rsplit("/", 1)[1]
    (path,) = (root / "models" / model / "taskTypes" / "QuestionAndAnswer" / "datasets" / "faq").glob("*_output.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def scores(line: dict) -> dict[str, dict]:
    return {score["metricName"]: score for score in line["automatedEvaluationResult"]["scores"]}


def test_two_precomputed_sources_are_scored_like_models(server):
    from tailor.evaluate.metrics import exact_match, rouge_l

    bedrock = server.client()
    answers = {"reference-answers": [reference for _, reference, _ in QUESTIONS], "wrong-answers": WRONG}
    data_uri = server.put("s3://evals/own.jsonl", lines(answers))
    arn = bedrock.create_evaluation_job(**request("own-answers", data_uri, [source(name) for name in answers],
                                                  ["ExactMatch", "RougeL"]))["jobArn"]
    done = wait_for(bedrock, arn, timeout=120)
    assert done["status"] == "Completed", done.get("failureMessages")
    assert done["inferenceConfig"]["models"] == [source(name) for name in answers]
    (summary,) = bedrock.list_evaluation_jobs()["jobSummaries"]
    assert summary["inferenceConfigSummary"]["modelConfigSummary"] == {
        "bedrockModelIdentifiers": [], "precomputedInferenceSourceIdentifiers": list(answers)}
    assert summary["modelIdentifiers"] == []  # botocore: the Bedrock models' identifiers (deprecated field)

    for name, given in answers.items():
        written = outputs(server, arn, "own-answers", name)
        assert [line["modelResponses"] for line in written] == [[{"response": answer, "modelIdentifier": name}]
                                                                for answer in given]
        assert [line["inputRecord"] for line in written] == lines()  # the record, less the answers
        for line, answer, (_, reference, _) in zip(written, given, QUESTIONS):
            assert scores(line)["ExactMatch"]["result"] == exact_match(answer, reference)
            assert scores(line)["RougeL"]["result"] == rouge_l(answer, reference)
    root = server.home / "buckets" / "evals" / "out" / "own-answers" / arn.rsplit("/", 1)[1]
    summary = json.loads((root / "summary.json").read_text())["faq"]["summary"]
    assert summary["reference-answers"]["metrics"]["ExactMatch"]["mean"] == 1.0
    assert summary["wrong-answers"]["metrics"]["ExactMatch"]["mean"] == pytest.approx(1 / 3)
    assert "A kind of fish." in (root / "reports" / "faq" / "report.html").read_text()


@pytest.fixture
def judged_server(home, evaluation):
    with running_server(home, {**ALIASES, CUSTOM_JUDGE: str(evaluation.judge / "model")}) as server:
        yield server


@pytest.mark.slow
def test_a_custom_metric_gives_the_grader_layers_number(judged_server, evaluation):
    from tailor.evaluate.backends import EngineModel
    from tailor.evaluate.judge import custom_grader, custom_result
    from tailor.evaluate.spec import CustomMetric, RatingScaleItem
    from tailor.graders.openai import grade, sample_namespace, validate
    from tailor.jobs.evaluation import custom_score
    from tailor.serve.engine import Engine
    from tailor.serve.protocol import Target
    from tailor.settings import Settings

    server = judged_server
    bedrock = server.client()
    references = [reference for _, reference, _ in QUESTIONS]
    data_uri = server.put("s3://evals/judged.jsonl", lines({"reference-answers": references}))
    correct = {"name": "Correct-1-10", "instructions": INSTRUCTIONS, "ratingScale": CORRECT_1_TO_10}
    verdict = {"name": "Verdict", "instructions": "Is this answer right? {{prediction}}",
               "ratingScale": [{"definition": "right", "value": {"stringValue": "Right"}},
                               {"definition": "wrong", "value": {"stringValue": "Wrong"}}]}
    params = json.dumps({"inferenceConfig": {"maxTokens": 48}, "system": HELP_DESK_SYSTEM})
    models = [source("reference-answers"), {"bedrockModel": {"modelIdentifier": HAIKU_ID, "inferenceParams": params}}]
    arn = bedrock.create_evaluation_job(**request("custom", data_uri, models, ["RougeL", "Correct-1-10", "Verdict"],
                                                  custom_config(correct, verdict)))["jobArn"]
    done = wait_for(bedrock, arn, timeout=300)
    assert done["status"] == "Completed", done.get("failureMessages")
    assert done["evaluationConfig"]["automated"]["customMetricConfig"] == custom_config(correct, verdict)
    (summary,) = bedrock.list_evaluation_jobs()["jobSummaries"]
    assert summary["customMetricsEvaluatorModelIdentifiers"] == [CUSTOM_JUDGE]
    assert summary["inferenceConfigSummary"]["modelConfigSummary"] == {
        "bedrockModelIdentifiers": [HAIKU_ID], "precomputedInferenceSourceIdentifiers": ["reference-answers"]}

    report = server.home / "buckets" / "evals" / "out" / "custom" / arn.rsplit("/", 1)[1] / "reports" / "faq"
    reply = scores(outputs(server, arn, "custom", "reference-answers")[0])["Correct-1-10"]["evaluatorDetails"][0]
    assert reply["explanation"].splitlines()[0] in (report / "report.html").read_text()
    assert "Correct-1-10.explanation" in (report / "comparison.csv").read_text().splitlines()[0]

    # The same definitions graded by tailor.graders.openai in this process, with the same judge.
    settings = Settings(home=server.home, model_aliases={CUSTOM_JUDGE: str(evaluation.judge / "model")})
    metrics = [CustomMetric(correct["name"], INSTRUCTIONS, tuple(RatingScaleItem(i["definition"], i["value"]["floatValue"])
                                                                 for i in CORRECT_1_TO_10)),
               CustomMetric(verdict["name"], verdict["instructions"],
                            (RatingScaleItem("right", "Right"), RatingScaleItem("wrong", "Wrong")))]
    engine = Engine(settings)
    try:
        judge = EngineModel(CUSTOM_JUDGE, Target(str(evaluation.judge / "model")), engine)
        for model in ("reference-answers", HAIKU_ID):
            written = outputs(server, arn, "custom", model)
            assert len(written) == len(QUESTIONS)
            cases = [{"item": {"prompt": line["inputRecord"]["prompt"],
                               "referenceResponse": line["inputRecord"]["referenceResponse"]},
                      "sample": sample_namespace(line["modelResponses"][0]["response"])} for line in written]
            for metric in metrics:
                grader = validate(custom_grader(metric, CUSTOM_JUDGE), settings)
                graded = grade(grader, cases, settings, judges=lambda name: judge)
                for line, verdict_here in zip(written, graded):
                    got = scores(line)[metric.name]
                    expected = custom_score(metric, grader, verdict_here)
                    assert got["result"] == expected.value, (model, metric.name, got, verdict_here)
                    assert got["evaluatorDetails"][0]["explanation"] == expected.explanation
                    if verdict_here.error is None and grader.type == "score_model":
                        assert got["result"] == custom_result(metric, verdict_here.reward)
                        assert got["result"] in range(1, 11)
    finally:
        engine.close()


def test_bad_extension_requests_are_refused_naming_the_field(home):
    with running_server(home, ALIASES, args=("--no-runner",)) as server:
        bedrock = server.client()

        def refused(params) -> str:
            with pytest.raises(ClientError) as caught:
                bedrock.create_evaluation_job(**params)
            assert caught.value.response["Error"]["Code"] == "ValidationException"
            return caught.value.response["Error"]["Message"]

        own = server.put("s3://evals/own.jsonl", lines({"mine": WRONG}))
        plain = server.put("s3://evals/plain.jsonl", lines())
        half = server.put("s3://evals/half.jsonl", [lines({"mine": WRONG})[0], lines()[1]])
        models = [{"bedrockModel": {"modelIdentifier": HAIKU_ID}}]
        judge = HAIKU
        good = {"name": "Tone", "instructions": "Rate {{prediction}} for {{prompt}}."}

        message = refused(request("bad-id", own, [source("bad id!")], ["RougeL"]))
        assert "inferenceConfig.models[0].precomputedInferenceSource.inferenceSourceIdentifier" in message
        message = refused(request("half", half, [source("mine")], ["RougeL"]))
        assert "half.jsonl: line 2: modelResponses: required" in message and "line 1" not in message
        message = refused(request("other", own, [source("theirs")], ["RougeL"]))
        assert ("lines 1, 2 and 3: modelResponses[0].modelIdentifier: 'mine' names no precomputed inference source"
                in message)
        message = refused(request("ignored", own, models, ["RougeL"]))
        assert "lines 1, 2 and 3: modelResponses: this job has no precomputedInferenceSource" in message
        message = refused(request("twice", own, [source(HAIKU_ID.replace(":", "-")), source(HAIKU_ID.replace(":", "-"))],
                                  ["RougeL"]))
        assert "inferenceConfig.models[1].precomputedInferenceSource.inferenceSourceIdentifier" in message

        field = "evaluationConfig.automated.customMetricConfig.customMetrics[0].customMetricDefinition"
        message = refused(request("variable", plain, models, ["Tone"], custom_config(
            {**good, "instructions": "Given {{context}}, rate {{prediction}}."}, judge=judge)))
        assert f"{field}.instructions: unknown variable {{{{context}}}}" in message
        message = refused(request("no-prediction", plain, models, ["Tone"], custom_config(
            {**good, "instructions": "Rate {{prompt}}."}, judge=judge)))
        assert f"{field}.instructions: must contain {{{{prediction}}}}" in message
        mixed = [{"definition": "good", "value": {"floatValue": 1.0}}, {"definition": "bad", "value": {"stringValue": "no"}}]
        message = refused(request("mixed", plain, models, ["Tone"], custom_config({**good, "ratingScale": mixed},
                                                                                 judge=judge)))
        assert f"{field}.ratingScale: every item's value must be of one kind" in message
        message = refused(request("builtin", plain, models, ["RougeL"], custom_config({**good, "name": "RougeL"},
                                                                                    judge=judge)))
        assert f"{field}.name: RougeL is a built-in metric's name" in message
        message = refused(request("unlisted", plain, models, ["RougeL"], custom_config(good, judge=judge)))
        assert f"{field}.name: the custom metric Tone is named in no" in message
        message = refused(request("unknown-metric", plain, models, ["Tone"]))
        assert "metricNames: Tone is not a metric Tailor knows" in message
        eleven = [{**good, "name": f"Tone{i}"} for i in range(11)]
        message = refused(request("eleven", plain, models, [m["name"] for m in eleven[:10]],
                                  custom_config(*eleven, judge=judge)))
        assert "evaluationConfig.automated.customMetricConfig.customMetrics" in message and "10" in message
        message = refused(request("no-judge", plain, models, ["Tone"], custom_config(good, judge="no-such-judge")))
        assert "evaluationConfig.automated.customMetricConfig.evaluatorModelConfig.bedrockEvaluatorModels[0]" in message
        assert bedrock.list_evaluation_jobs()["jobSummaries"] == []
