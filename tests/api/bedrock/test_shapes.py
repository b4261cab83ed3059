"""Tailor's checker and shaper of requests and responses, driven by botocore's bedrock model, without a server.

What the model says (which members, which limits) is botocore's business; what is tested here is
what Tailor makes of it: every problem at once with its path, words instead of regexes, coercion of
query-string text, Java integer bounds, linear-time patterns, and responses botocore parses back.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import signal

import pytest
from botocore.awsrequest import HeadersDict
from botocore.model import ServiceModel
from botocore.parsers import RestJSONParser

from tailor.api.bedrock import shapes
from tailor.errors import InvalidInput, problems_message

JOB_ARN = ("arn:aws:bedrock:us-east-1:123456789012:model-customization-job/"
           "amazon.titan-text-express-v1:0:8k/a1b2c3d4e5f6")
FOUNDATION_ARN = "arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-text-express-v1:0:8k"
ROLE_ARN = "arn:aws:iam::123456789012:role/BedrockCustomization"


def seed_request(**changes) -> dict:
    """A CreateModelCustomizationJob body as a fine-tuning script sends it (Titan on a dialogue dataset)."""
    request = {
        "jobName": "dialogsum-ft-2024-01-01",
        "customModelName": "dialogsum-titan",
        "roleArn": ROLE_ARN,
        "baseModelIdentifier": "amazon.titan-text-express-v1:0:8k",
        "customizationType": "FINE_TUNING",
        "trainingDataConfig": {"s3Uri": "s3://tailor-data/dialogsum/train.jsonl"},
        "validationDataConfig": {"validators": [{"s3Uri": "s3://tailor-data/dialogsum/validation.jsonl"}]},
        "outputDataConfig": {"s3Uri": "s3://tailor-data/output/"},
        "hyperParameters": {"epochCount": "1", "batchSize": "8", "learningRate": "0.00001"},
        "jobTags": [{"key": "project", "value": "dialogsum"}],
        "clientRequestToken": "3f2c0b1e-9a4d-4c1e-8f7a-2b6d5e4c3a21",
    }
    request.update(changes)
    return request


def problems(operation: str, params: dict) -> list[str]:
    return shapes.input_problems(operation, params)[1]


# ------------------------------------------------------------ CreateModelCustomizationJob


def test_a_seed_like_request_passes_unchanged():
    request = seed_request()
    assert shapes.validate_input("CreateModelCustomizationJob", request) == request


def test_every_problem_is_reported_at_once_with_its_field_path():
    request = seed_request(jobName="bad name!", customizationType="SUPERVISED",
                           hyperParameters={"epochCount": 3}, roleArn=None)
    del request["outputDataConfig"]
    with pytest.raises(InvalidInput) as error:
        shapes.validate_input("CreateModelCustomizationJob", request)
    assert error.value.message == (
        "5 validation errors detected:\n"
        "  jobName: must be a letter or digit, then letters, digits, hyphens, dots and plus signs, got 'bad name!'\n"
        "  roleArn: required\n"
        "  customizationType: must be one of FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION, "
        "REINFORCEMENT_FINE_TUNING, IMPORTED, got 'SUPERVISED'\n"
        "  outputDataConfig: required\n"
        "  hyperParameters.epochCount: must be a string, got 3"
    )


def test_unknown_members_are_named_with_a_suggestion():
    assert problems("CreateModelCustomizationJob", seed_request(jobname="x", learningRate="0.1")) == [
        "jobname: unknown member (did you mean 'jobName'?)",
        "learningRate: unknown member",
    ]
    nested = seed_request(trainingDataConfig={"s3Uri": "s3://tailor-data/t.jsonl", "format": "jsonl"})
    assert problems("CreateModelCustomizationJob", nested) == ["trainingDataConfig.format: unknown member"]


def test_enum_violation():
    assert problems("CreateModelCustomizationJob", seed_request(customizationType="fine_tuning")) == [
        "customizationType: must be one of FINE_TUNING, CONTINUED_PRE_TRAINING, DISTILLATION, "
        "REINFORCEMENT_FINE_TUNING, IMPORTED, got 'fine_tuning'"]


@pytest.mark.parametrize("name", ["my-job", "job.v2+ft", "a", "a--b", "A" * 63])
def test_a_name_the_pattern_accepts_passes(name):
    assert problems("CreateModelCustomizationJob", seed_request(jobName=name)) == []


@pytest.mark.parametrize("name, problem", [
    # The whole value must match, not a prefix of it (Java's String.matches, Python's fullmatch).
    ("ok-then-not!", "must be a letter or digit, then letters, digits, hyphens, dots and plus signs, got 'ok-then-not!'"),
    ("-starts-with-dash", "must be a letter or digit, then letters, digits, hyphens, dots and plus signs, got '-starts-with-dash'"),
    ("", "length must be between 1 and 63, got 0"),  # the length is checked before the pattern
    ("a" * 64, "length must be between 1 and 63, got 64"),
])
def test_a_name_the_pattern_refuses_is_explained_in_words(name, problem):
    assert problems("CreateModelCustomizationJob", seed_request(jobName=name)) == [f"jobName: {problem}"]


def test_a_pattern_without_words_is_quoted():
    # Shapes Tailor's operations do not read have no words; the pattern itself is the explanation.
    shape = {"type": "string", "pattern": "[a-z]+"}
    found: list[str] = []
    shapes._check_string(shape, "ABC", "field", found, False)
    assert found == ["field: must match [a-z]+, got 'ABC'"]


def test_the_pattern_words_name_shapes_the_model_has():
    model_shapes = shapes._combined()["shapes"]
    for name in shapes.PATTERN_WORDS:
        assert "pattern" in model_shapes[name], name


def test_nested_list_items_are_checked_with_their_index():
    request = seed_request(validationDataConfig={"validators": [
        {"s3Uri": "s3://tailor-data/v.jsonl"}, {}, {"s3Uri": "http://not-s3/v.jsonl"}]})
    assert problems("CreateModelCustomizationJob", request) == [
        "validationDataConfig.validators[1].s3Uri: required",
        "validationDataConfig.validators[2].s3Uri: must be an s3:// URI such as s3://bucket/path/file.jsonl "
        "(a bucket of 3 to 63 lowercase letters, digits, dots and hyphens; a path of letters, digits and "
        "- ! _ * ' ( ) .), got 'http://not-s3/v.jsonl'",
    ]
    too_many = seed_request(validationDataConfig={"validators": [{"s3Uri": "s3://tailor-data/v"}] * 11})
    assert problems("CreateModelCustomizationJob", too_many) == [
        "validationDataConfig.validators: must have between 0 and 10 items, got 11"]


def test_hyperparameter_values_must_be_strings():
    request = seed_request(hyperParameters={"epochCount": 2, "learningRate": 0.0001, "batchSize": "8",
                                            "early stopping": True})
    assert problems("CreateModelCustomizationJob", request) == [
        "hyperParameters.epochCount: must be a string, got 2",
        "hyperParameters.learningRate: must be a string, got 0.0001",
        "hyperParameters['early stopping']: must be a string, got true",
    ]
    assert problems("CreateModelCustomizationJob", seed_request(hyperParameters=["epochCount"])) == [
        "hyperParameters: must be an object, got a list"]


def test_a_union_needs_exactly_one_member():
    grader = {"lambdaGrader": {"lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:grade"}}
    rft = {"rftConfig": {"graderConfig": grader}}
    assert problems("CreateModelCustomizationJob", seed_request(customizationConfig=rft)) == []
    both = {**rft, "distillationConfig": {"teacherModelConfig": {
        "teacherModelIdentifier": "amazon.nova-pro-v1:0"}}}
    assert problems("CreateModelCustomizationJob", seed_request(customizationConfig=both)) == [
        "customizationConfig: must set exactly one of distillationConfig, rftConfig, "
        "got distillationConfig, rftConfig"]
    assert problems("CreateModelCustomizationJob", seed_request(customizationConfig={})) == [
        "customizationConfig: must set exactly one of distillationConfig, rftConfig, got none"]


def test_a_non_object_request_is_one_problem():
    assert problems("CreateModelCustomizationJob", ["jobName"]) == ["request: must be an object, got a list"]


# ------------------------------------------------------------ query strings and paths


def test_query_string_values_are_coerced_before_checking():
    coerced = shapes.validate_input("ListModelCustomizationJobs", {
        "maxResults": "5", "creationTimeAfter": "2024-01-01T00:00:00Z", "sortOrder": "Ascending",
        "sortBy": "CreationTime", "statusEquals": "InProgress", "nameContains": "faq"})
    assert coerced == {
        "maxResults": 5,
        "creationTimeAfter": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
        "sortOrder": "Ascending", "sortBy": "CreationTime", "statusEquals": "InProgress",
        "nameContains": "faq",
    }


@pytest.mark.parametrize("params, problem", [
    ({"maxResults": "0"}, "maxResults: must be between 1 and 1000, got 0"),
    ({"maxResults": "1001"}, "maxResults: must be between 1 and 1000, got 1001"),
    ({"maxResults": "abc"}, "maxResults: must be an integer, got 'abc'"),
    ({"maxResults": "5.0"}, "maxResults: must be an integer, got '5.0'"),
    ({"sortOrder": "Down"}, "sortOrder: must be one of Ascending, Descending, got 'Down'"),
    ({"creationTimeAfter": "yesterday"},
     "creationTimeAfter: must be an ISO-8601 timestamp or epoch seconds, got 'yesterday'"),
    ({"nextToken": ""}, "nextToken: length must be between 1 and 2048, got 0"),
])
def test_query_string_problems(params, problem):
    assert problems("ListModelCustomizationJobs", params) == [problem]


def test_timestamps_accept_what_botocore_sends_and_epoch_seconds():
    for text in ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.000Z", "2024-01-01T01:00:00+01:00", "1704067200"):
        coerced = shapes.validate_input("ListModelCustomizationJobs", {"creationTimeBefore": text})
        assert coerced["creationTimeBefore"] == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), text


def test_query_string_booleans():
    assert shapes.validate_input("ListCustomModels", {"isOwned": "true"}) == {"isOwned": True}
    assert problems("ListCustomModels", {"isOwned": "yes"}) == ["isOwned: must be true or false, got 'yes'"]


def test_body_numbers_are_not_coerced_from_text():
    request = {"provisionedModelName": "faq-pt", "modelId": "faq-model", "modelUnits": "2"}
    assert problems("CreateProvisionedModelThroughput", request) == ["modelUnits: must be an integer, got '2'"]
    assert problems("CreateProvisionedModelThroughput", {**request, "modelUnits": True}) == [
        "modelUnits: must be an integer, got true"]
    assert problems("CreateProvisionedModelThroughput", {**request, "modelUnits": 0}) == [
        "modelUnits: must be at least 1, got 0"]


def test_path_identifiers_accept_an_arn_or_a_name_and_say_so_when_refused():
    assert problems("GetModelCustomizationJob", {"jobIdentifier": JOB_ARN}) == []
    assert problems("GetModelCustomizationJob", {"jobIdentifier": "dialogsum-ft"}) == []
    assert problems("GetModelCustomizationJob", {"jobIdentifier": "not a job"}) == [
        "jobIdentifier: must be a customization job's ARN, or its name: a letter or digit, then letters, digits, "
        "hyphens, dots and plus signs, got 'not a job'"]


def test_located_members_may_arrive_under_their_wire_names():
    coerced = shapes.validate_input("ListInferenceProfiles", {"type": "SYSTEM_DEFINED", "maxResults": "10"})
    assert coerced == {"typeEquals": "SYSTEM_DEFINED", "maxResults": 10}
    locations = shapes.input_locations("ListInferenceProfiles")
    assert locations["typeEquals"] == ("querystring", "type")
    assert shapes.input_locations("GetModelCustomizationJob") == {"jobIdentifier": ("uri", "jobIdentifier")}
    assert shapes.input_locations("TagResource")["tags"] == ("body", "tags")


# ------------------------------------------------------------ TagResource


def test_tags_keys_and_values():
    resource = JOB_ARN
    good = [{"key": "team:ml/faq", "value": "a b_c.d=e+f@g-h"}]
    assert problems("TagResource", {"resourceARN": resource, "tags": good}) == []
    bad = [{"key": "", "value": "x"}, {"key": "k" * 129, "value": "x"}, {"key": "bad#key", "value": "v" * 257},
           {"key": "no-value"}]
    assert problems("TagResource", {"resourceARN": resource, "tags": bad}) == [
        "tags[0].key: length must be between 1 and 128, got 0",
        "tags[1].key: length must be between 1 and 128, got 129",
        "tags[2].key: may hold only letters, digits, whitespace and . _ : / = + @ -, got 'bad#key'",
        "tags[2].value: length must be between 0 and 256, got 257",
        "tags[3].value: required",
    ]
    assert problems("TagResource", {"resourceARN": resource, "tags": good * 201}) == [
        "tags: must have between 0 and 200 items, got 201"]


def test_tag_patterns_use_java_ascii_classes():
    # Java's \s is ASCII whitespace only; Python's would also accept a no-break space.
    tag = [{"key": "a\u00a0b", "value": "x"}]
    assert problems("TagResource", {"resourceARN": JOB_ARN, "tags": tag}) == [
        "tags[0].key: may hold only letters, digits, whitespace and . _ : / = + @ -, got 'a\\xa0b'"]


# ------------------------------------------------------------ patterns


def test_every_model_pattern_compiles_except_java_unicode_classes():
    patterns = {shape["pattern"] for shape in shapes.service_model()["shapes"].values() if "pattern" in shape}
    skipped = {pattern for pattern in patterns if shapes.compiled_pattern(pattern) is None}
    assert skipped and all("\\p{" in pattern for pattern in skipped)


def _adversarial_values(max_length: int) -> list[str]:
    prefixes = ["", "arn:aws:bedrock:us-east-1:123456789012:", "arn:aws:bedrock:us-east-1::foundation-model/",
                "arn:aws:bedrock:us-east-1:123456789012:model-customization-job/", "s3://bucket/"]
    units = ["a", "-", "a-", "a.", "a:", "a_", "a ", "-a", "ab-", "a/", "."]
    values = []
    for prefix in prefixes:
        for unit in units:
            body = prefix + unit * max(1, (max_length - len(prefix)) // len(unit))
            values.extend([body[:max_length], body[:max_length - 1] + "!"])
    return values


def test_no_model_pattern_backtracks_catastrophically():
    """A 63-character job name of dashes once took hours; every pattern must answer in bounded time."""
    def too_slow(*_):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, too_slow)
    try:
        for shape in shapes.service_model()["shapes"].values():
            pattern = shapes.compiled_pattern(shape["pattern"]) if "pattern" in shape else None
            if pattern is None:
                continue
            for value in _adversarial_values(min(shape.get("max", 300), 300)):
                signal.setitimer(signal.ITIMER_REAL, 2.0)
                try:
                    pattern.fullmatch(value)
                except TimeoutError:
                    pytest.fail(f"pattern {shape['pattern']!r} is too slow on {value!r}")
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("pattern", [
    r"[a-zA-Z0-9](-*[a-zA-Z0-9\+\-\.])*",
    r"[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}",
])
def test_the_linear_rewrite_accepts_exactly_what_the_model_pattern_accepts(pattern):
    original, rewritten = re.compile(pattern), shapes.compiled_pattern(pattern)
    assert rewritten.pattern != pattern
    for length in range(1, 7):
        for chars in itertools.product("a-.+!", repeat=length):
            value = "".join(chars)
            assert bool(original.fullmatch(value)) == bool(rewritten.fullmatch(value)), value


# ------------------------------------------------------------ responses


def job_record(**changes) -> dict:
    record = {
        "jobArn": JOB_ARN,
        "jobName": "dialogsum-ft",
        "outputModelName": "dialogsum-titan",
        "roleArn": ROLE_ARN,
        "status": "InProgress",
        "creationTime": dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc),
        "lastModifiedTime": dt.datetime(2024, 1, 2, 3, 4, 6),  # naive: Tailor stores UTC
        "endTime": None,
        "outputModelArn": None,
        "baseModelArn": FOUNDATION_ARN,
        "hyperParameters": {"epochCount": "1"},
        "trainingDataConfig": {"s3Uri": "s3://tailor-data/train.jsonl"},
        "validationDataConfig": {"validators": []},
        "outputDataConfig": {"s3Uri": "s3://tailor-data/output/"},
        "customizationType": "FINE_TUNING",
        "trainingMetrics": {"trainingLoss": 0.25},
        "validationMetrics": [{"validationLoss": 0.5}],
    }
    record.update(changes)
    return record


def parse_with_botocore(operation: str, body: dict) -> dict:
    model = ServiceModel(shapes.service_model(), "bedrock")
    response = {"status_code": 200, "headers": HeadersDict({"x-amzn-RequestId": "r-1"}),
                "body": json.dumps(body).encode()}
    return RestJSONParser().parse(response, model.operation_model(operation).output_shape)


def test_a_job_response_is_shaped_for_botocore():
    body = shapes.shape_output("GetModelCustomizationJob", job_record(), strict=True)
    assert body["creationTime"] == "2024-01-02T03:04:05.678000Z"
    assert body["lastModifiedTime"] == "2024-01-02T03:04:06Z"
    assert "endTime" not in body and "outputModelArn" not in body
    parsed = parse_with_botocore("GetModelCustomizationJob", json.loads(json.dumps(body)))
    assert parsed["creationTime"] == dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
    assert parsed["lastModifiedTime"] == dt.datetime(2024, 1, 2, 3, 4, 6, tzinfo=dt.timezone.utc)
    assert parsed["validationMetrics"] == [{"validationLoss": 0.5}]
    assert parsed["jobArn"] == JOB_ARN


def test_timestamps_in_other_zones_become_utc():
    moment = dt.datetime(2024, 1, 2, 5, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert shapes.format_timestamp(moment) == "2024-01-02T03:00:00Z"


def test_strict_output_catches_an_extra_and_a_missing_member():
    record = job_record(internalPath="/var/tailor/jobs/1")
    del record["validationDataConfig"]
    with pytest.raises(ValueError) as error:
        shapes.shape_output("GetModelCustomizationJob", record, strict=True)
    assert "validationDataConfig: required" in str(error.value)
    assert "internalPath: unknown member" in str(error.value)


def test_strict_output_catches_wrong_values_deep_inside():
    record = job_record(status="Running", validationMetrics=[{"validationLoss": "0.5"}])
    with pytest.raises(ValueError) as error:
        shapes.shape_output("GetModelCustomizationJob", record, strict=True)
    assert ("status: must be one of InProgress, Completed, Failed, Stopping, Stopped, got 'Running'"
            in str(error.value))
    assert "validationMetrics[0].validationLoss: must be a number, got '0.5'" in str(error.value)


def test_lenient_output_leaves_out_what_the_contract_lacks(monkeypatch):
    monkeypatch.setattr(shapes, "STRICT_OUTPUT", False)
    body = shapes.shape_output("GetModelCustomizationJob", job_record(internalPath="/var/tailor"))
    assert "internalPath" not in body
    monkeypatch.setattr(shapes, "STRICT_OUTPUT", True)
    with pytest.raises(ValueError):
        shapes.shape_output("GetModelCustomizationJob", job_record(internalPath="/var/tailor"))


def test_list_responses_and_empty_responses():
    summary = {key: job_record()[key] for key in ("jobArn", "baseModelArn", "jobName", "status", "creationTime")}
    body = shapes.shape_output("ListModelCustomizationJobs",
                               {"modelCustomizationJobSummaries": [summary], "nextToken": None}, strict=True)
    assert body == {"modelCustomizationJobSummaries": [{**summary, "creationTime": "2024-01-02T03:04:05.678000Z"}]}
    assert shapes.shape_output("StopModelCustomizationJob", {}, strict=True) == {}


def test_an_unknown_operation_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown Bedrock operation 'CreateJob'"):
        shapes.http_binding("CreateJob")


# ------------------------------------------------------------ what a real boto3 client sends


def sent_by_boto3(operation: str, call) -> dict:
    """The params a route would merge from the request boto3 serializes (body + query string)."""
    import urllib.parse

    import boto3
    from botocore.config import Config

    client = boto3.client("bedrock", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"max_attempts": 0}))
    captured: dict = {}

    class Stop(Exception):
        pass

    def capture(request, **_):
        url = urllib.parse.urlsplit(request.url)
        captured.update(urllib.parse.parse_qsl(url.query))
        if request.body:
            captured.update(json.loads(request.body))
        raise Stop

    client.meta.events.register(f"before-send.bedrock.{operation}", capture)
    with pytest.raises(Stop):
        call(client)
    return captured


def test_what_boto3_serializes_validates_and_coerces_back():
    after = dt.datetime(2024, 1, 1, 12, 30, tzinfo=dt.timezone.utc)
    params = sent_by_boto3("ListModelCustomizationJobs", lambda client: client.list_model_customization_jobs(
        creationTimeAfter=after, maxResults=5, sortOrder="Ascending", statusEquals="Completed"))
    assert params["maxResults"] == "5"
    assert shapes.validate_input("ListModelCustomizationJobs", params) == {
        "creationTimeAfter": after, "maxResults": 5, "sortOrder": "Ascending", "statusEquals": "Completed"}

    request = seed_request()
    del request["clientRequestToken"]  # boto3 fills it in, as an idempotency token
    params = sent_by_boto3("CreateModelCustomizationJob",
                           lambda client: client.create_model_customization_job(**request))
    coerced = shapes.validate_input("CreateModelCustomizationJob", params)
    assert coerced == {**request, "clientRequestToken": params["clientRequestToken"]}


# ------------------------------------------------------------ hostile input: refused, named, never a crash


def test_integers_without_a_model_bound_keep_to_the_java_int():
    request = {"provisionedModelName": "faq-pt", "modelId": "faq-model"}
    assert problems("CreateProvisionedModelThroughput", {**request, "modelUnits": 10**20}) == [
        "modelUnits: must be at most 2147483647, got 100000000000000000000"]
    assert problems("CreateProvisionedModelThroughput", {**request, "modelUnits": 2**31 - 1}) == []
    assert problems("CreateProvisionedModelThroughput", {**request, "modelUnits": -10**60}) == [
        "modelUnits: must be at least 1, got a 61-digit number"]


@pytest.mark.parametrize("text", ["9" * 5000, "99999999999999999999", "1e999", "NaN", "²"])
def test_query_string_numbers_of_any_length_are_checked_not_converted_blindly(text):
    [problem] = problems("ListModelCustomizationJobs", {"maxResults": text})
    assert problem.startswith("maxResults: must be")


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "-1e20", "1e20",
                                    "NaN", "1e999", -1e20, float("inf")])
def test_timestamps_outside_what_utc_can_hold_are_a_problem_not_an_overflow(moment):
    assert shapes.parse_timestamp(moment) is None
    [problem] = problems("ListModelCustomizationJobs", {"creationTimeAfter": moment})
    assert problem.startswith("creationTimeAfter: must be an ISO-8601 timestamp")


def test_text_with_a_lone_surrogate_is_refused_by_name_and_never_echoed_raw():
    found = problems("CreateModelCustomizationJob", seed_request(jobName="a\ud800", hyperParameters={"\udc01": "1"},
                                                                 **{"\ud802x": 1}))
    assert "jobName: not valid Unicode: a lone surrogate at character 1" in found
    assert any(problem.startswith("hyperParameters[") and "lone surrogate" in problem for problem in found)
    assert "\\ud802x: unknown member" in found
    problems_message(found).encode("utf-8")


def test_inference_params_are_read_as_the_json_the_model_documents():
    def evaluation(params: str) -> dict:
        return {"jobName": "eval", "roleArn": ROLE_ARN, "outputDataConfig": {"s3Uri": "s3://bucket/out/"},
                "evaluationConfig": {"automated": {"datasetMetricConfigs": [{
                    "taskType": "Generation", "dataset": {"name": "d", "datasetLocation": {"s3Uri": "s3://bucket/d.jsonl"}},
                    "metricNames": ["ExactMatch"]}]}},
                "inferenceConfig": {"models": [{"bedrockModel": {"modelIdentifier": "tailor.tiny",
                                                                 "inferenceParams": params}}]}}

    field = "inferenceConfig.models[0].bedrockModel.inferenceParams"
    assert problems("CreateEvaluationJob", evaluation('{"inferenceConfig": {"maxTokens": 8}}')) == []
    [problem] = problems("CreateEvaluationJob", evaluation('{"inferenceConfig": {"maxTokens": 1e999}}'))
    assert problem.startswith(f"{field}.inferenceConfig.maxTokens: must be a finite number")
    [problem] = problems("CreateEvaluationJob", evaluation("not json"))
    assert problem.startswith(f"{field}: not valid JSON")
