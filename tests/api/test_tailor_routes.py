"""Tailor's own routes (``/tailor/v1/``), the JSON twins of console functions, against one real
server: each answers what the console route answers (the same service call), authenticates as the
Bedrock routes do, refuses another principal's resources and names the field in its errors."""

from __future__ import annotations

import json

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, running_server
from tests.api.console.test_models import add_custom_model
from tests.conftest import tiny_home
from tests.console.session import signed_in_client

TRAIN = "s3://alice-routes/train.jsonl"
PLANTED = "s3://alice-routes/planted.jsonl"


def record(index: int) -> dict:
    return {"messages": [{"role": "user", "content": f"Question {index}?"},
                         {"role": "assistant", "content": f"Answer {index}."}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    home = tiny_home(tmp_path_factory.mktemp("tailor-routes") / "home", tiny_models_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAILOR_MODEL_UNIT_HOURLY_PRICE", "1.25")
        with running_server(home, ALIASES, ("--no-runner",)) as running:
            add_custom_model(home, "alice", "alices-model")
            running.put(TRAIN, [record(i) for i in range(16)])
            running.put(PLANTED, [record(i) if i != 1 else {"messages": [{"role": "robot", "content": "q"},
                                                                         {"role": "assistant", "content": "a"}]}
                                  for i in range(12)])
            yield running


def api(server, principal: str = "alice") -> httpx.Client:
    access_key_id, secret = server.keys[principal]
    return httpx.Client(base_url=server.endpoint + "/tailor/v1", timeout=120,
                        headers={"Authorization": f"Bearer {access_key_id}.{secret}"})


@pytest.fixture(scope="module")
def alice(server):
    with api(server) as client:
        yield client


@pytest.fixture(scope="module")
def bob(server):
    with api(server, "bob") as client:
        yield client


@pytest.fixture(scope="module")
def console(server):
    client = signed_in_client(server.endpoint, *server.keys["alice"])
    yield client
    client.close()


def aws_error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["x-amzn-ErrorType"] == code
    return answer.json()["message"]


def estimate_body(**changes) -> dict:
    return {"jobName": "est", "customModelName": "est-model", "baseModelIdentifier": "tailor.tiny",
            "customizationType": "FINE_TUNING", "hyperParameters": {"batchSize": "8"},
            "trainingDataConfig": {"s3Uri": TRAIN}, "outputDataConfig": {"s3Uri": "s3://alice-est-out/out"},
            **changes}


def test_datasets_list_and_validate_answer_as_the_console_does(alice, console):
    listed = alice.get("/datasets")
    assert listed.status_code == 200, listed.text
    assert listed.json() == console.get("/console/api/datasets").json()
    [bucket] = listed.json()["buckets"]
    assert bucket["bucket"] == "alice-routes" and {o["key"] for o in bucket["objects"]} == {"train.jsonl",
                                                                                        "planted.jsonl"}

    body = {"uri": PLANTED, "kind": "FINE_TUNING", "base_model": "tailor.tiny", "validation_uri": TRAIN}
    checked = alice.post("/datasets/validate", json=body)
    assert checked.status_code == 200, checked.text
    assert checked.json() == console.post_json("/console/api/datasets/validate", body).json()
    training, validation = checked.json()["reports"]
    assert checked.json()["ok"] is False and validation["problems"] == []
    assert [(p["file"], p["line"], p["field"]) for p in training["problems"]] == [(PLANTED, 2, "messages[0].role")]

    missing = aws_error(alice.post("/datasets/validate", json={"uri": TRAIN, "kind": "FINE_TUNING"}), 400,
                        "ValidationException")
    assert missing.startswith("base_model: ")


def test_the_preview_shows_the_training_view(alice):
    answer = alice.post("/datasets/preview", json={"uri": TRAIN, "kind": "FINE_TUNING", "base_model": "tailor.tiny",
                                                   "first": 2})
    assert answer.status_code == 200, answer.text
    records = answer.json()["records"]
    assert [entry["line"] for entry in records] == [1, 2]
    assert all(entry["segments"] and entry["tokens"] for entry in records)
    assert any(learned for entry in records for _, learned in entry["segments"])
    too_many = alice.post("/datasets/preview", json={"uri": TRAIN, "kind": "FINE_TUNING",
                                                     "base_model": "tailor.tiny", "first": 500})
    assert aws_error(too_many, 400, "ValidationException").startswith("first: ")


def test_hyperparameters_are_the_table_the_console_shows(alice, server):
    from tailor.services.customization import hyperparameter_table
    from tailor.settings import Settings
    from tailor.store.db import open_store

    answer = alice.get("/hyperparameters", params={"kind": "FINE_TUNING", "base_model": "tailor.tiny"})
    assert answer.status_code == 200, answer.text
    rows = {row["name"]: row for row in answer.json()["hyperparameters"]}
    settings = Settings(home=server.home, model_aliases=ALIASES)
    table = hyperparameter_table(open_store(settings), settings, "alice", "tailor.tiny", "FINE_TUNING")
    assert list(rows) == list(table)
    epochs = rows["epochCount"]
    assert (epochs["kind"], epochs["minimum"], epochs["maximum"], epochs["default"]) == (
        "int", table["epochCount"].minimum, table["epochCount"].maximum, table["epochCount"].default)
    assert epochs["description"] and epochs["choices"] == []

    rft = alice.get("/hyperparameters", params={"kind": "REINFORCEMENT_FINE_TUNING", "base_model": "tailor.tiny",
                                                "tuning_method": "lora"}).json()["hyperparameters"]
    assert "trainingSamplePerPrompt" in {row["name"] for row in rft}
    wrong = alice.get("/hyperparameters", params={"kind": "JUGGLING", "base_model": "tailor.tiny"})
    assert aws_error(wrong, 400, "ValidationException").startswith("kind: ")


def test_the_job_estimate_checks_like_create_and_creates_nothing(alice, console, server):
    answer = alice.post("/customization-jobs/estimate", json=estimate_body())
    assert answer.status_code == 200, answer.text
    estimate = answer.json()
    assert estimate["available"] and estimate["fits"] and "Estimated peak memory" in estimate["text"]
    form = {"kind": "FINE_TUNING", "name": "est", "model_name": "est-model", "base_model": "tailor.tiny",
            "training_uri": TRAIN, "output_uri": "s3://alice-est-out/out", "hp.batchSize": "8"}
    assert console.post_json("/console/api/jobs/check", form).json()["estimate"]["data"] == estimate["data"]

    bad = alice.post("/customization-jobs/estimate", json=estimate_body(hyperParameters={"epochCount": "0"}))
    assert "epochCount: must be between 1 and 100; got 0" in aws_error(bad, 400, "ValidationException")
    shape = alice.post("/customization-jobs/estimate", json=estimate_body(jobName="my job!"))
    assert "jobName" in aws_error(shape, 400, "ValidationException")
    no_data = alice.post("/customization-jobs/estimate", json=estimate_body(trainingDataConfig={}))
    assert "trainingDataConfig" in aws_error(no_data, 400, "ValidationException")

    assert not (server.home / "buckets" / "alice-est-out").exists()
    from sqlalchemy import create_engine, text

    # Read as another process would, from whichever database the server runs on.
    engine = create_engine(server.database_url)
    try:
        with engine.connect() as db:
            assert db.execute(text("SELECT count(*) FROM buckets WHERE name = 'alice-est-out'")).scalar_one() == 0
            assert db.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
            assert db.execute(text("SELECT count(*) FROM job_events")).scalar_one() == 0
    finally:
        engine.dispose()


def test_the_throughput_estimate_is_the_consoles(alice, console):
    params = {"modelUnits": "2", "commitmentDuration": "OneMonth"}
    answer = alice.get("/provisioned-throughput/estimate", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["estimate"] == console.get("/console/api/models/estimate", params=params).json()["estimate"]
    assert answer.json()["estimate"]["hours"] == 730 and answer.json()["estimate"]["hourly"] == 2.5
    hourly = alice.get("/provisioned-throughput/estimate").json()["estimate"]
    assert hourly["hours"] == 1 and hourly["amount"] == 1.25
    zero = alice.get("/provisioned-throughput/estimate", params={"modelUnits": "0"})
    assert aws_error(zero, 400, "ValidationException").startswith("modelUnits: ")
    year = alice.get("/provisioned-throughput/estimate", params={"commitmentDuration": "OneYear"})
    assert aws_error(year, 400, "ValidationException").startswith("commitmentDuration: ")


def test_each_caller_sees_only_its_own(bob, server):
    assert bob.get("/datasets").json() == {"buckets": []}
    for route in ("validate", "preview"):
        refused = bob.post(f"/datasets/{route}", json={"uri": TRAIN, "kind": "FINE_TUNING",
                                                        "base_model": "tailor.tiny"})
        assert aws_error(refused, 403, "AccessDeniedException").startswith("uri: ")
    foreign = bob.post("/customization-jobs/estimate", json=estimate_body())
    assert "trainingDataConfig.s3Uri" in aws_error(foreign, 403, "AccessDeniedException")
    # Alice's custom model is not found for bob, as through the Bedrock API.
    body = estimate_body(baseModelIdentifier="alices-model", trainingDataConfig={"s3Uri": "s3://bob-data/t.jsonl"},
                         outputDataConfig={"s3Uri": "s3://bob-data/out"})
    unknown = aws_error(bob.post("/customization-jobs/estimate", json=body), 404, "ResourceNotFoundException")
    assert unknown.startswith("baseModelIdentifier: ")
    with pytest.raises(ClientError) as through_bedrock:
        server.client(principal="bob").create_model_customization_job(
            roleArn="arn:aws:iam::000000000000:role/TailorCustomization", **body)
    assert through_bedrock.value.response["Error"] == {"Code": "ResourceNotFoundException", "Message": unknown}
    table = bob.get("/hyperparameters", params={"base_model": "alices-model"})
    assert "base_model" in aws_error(table, 404, "ResourceNotFoundException")


def test_authentication_is_the_bedrock_routes(server):
    unsigned = httpx.get(server.endpoint + "/tailor/v1/datasets", timeout=30)
    aws_error(unsigned, 403, "AccessDeniedException")
    wrong = httpx.get(server.endpoint + "/tailor/v1/datasets", headers={"Authorization": "Bearer AKIA.wrong"},
                      timeout=30)
    aws_error(wrong, 403, "AccessDeniedException")

    access_key_id, secret = server.keys["alice"]
    request = AWSRequest(method="POST", url=server.endpoint + "/tailor/v1/datasets/validate",
                         data=json.dumps({"uri": TRAIN, "kind": "FINE_TUNING", "base_model": "tailor.tiny"}),
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(access_key_id, secret), "bedrock", "us-east-1").add_auth(request)
    signed = httpx.post(request.url, content=request.body, headers=dict(request.headers), timeout=30)
    assert signed.status_code == 200 and signed.json()["ok"] is True, signed.text


def test_an_upload_puts_the_body_in_a_bucket_of_the_callers(server, alice, bob):
    content = "".join(json.dumps(record(i)) + "\n" for i in range(3)).encode()
    put = alice.put("/datasets", params={"uri": "s3://alice-uploads/three.jsonl"}, content=content)
    assert put.status_code == 200, put.text
    assert put.json() == {"uri": "s3://alice-uploads/three.jsonl", "bucket": "alice-uploads",
                          "key": "three.jsonl", "size": len(content)}
    assert (server.home / "buckets" / "alice-uploads" / "three.jsonl").read_bytes() == content
    listed = {b["bucket"]: [o["key"] for o in b["objects"]] for b in alice.get("/datasets").json()["buckets"]}
    assert listed["alice-uploads"] == ["three.jsonl"]

    assert "s3://alice-uploads/" in aws_error(bob.put("/datasets", params={"uri": "s3://alice-uploads/x.jsonl"},
                                                      content=content), 403, "AccessDeniedException")
    assert aws_error(alice.put("/datasets", params={"uri": "s3://alice-uploads/x.csv"}, content=content), 400,
                     "ValidationException").startswith("uri: ")
    assert aws_error(alice.put("/datasets", params={"uri": "s3://alice-uploads/empty.jsonl"}, content=b""), 400,
                     "ValidationException").startswith("body: the file is empty")
    assert not list((server.home / "tmp").glob(".upload-*"))  # no copy left behind
