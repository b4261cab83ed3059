"""Tenants are walls: one server, several principals, each tried as an attacker would.

Every test drives a real ``tailor serve`` on 127.0.0.1 with real boto3 clients (or raw HTTP where
an attacker would not use boto3) and asserts the attack fails *and how*: the error code, the field
it names, and that nothing was read, written or fetched.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::000000000000:role/Tailor"
RECORDS = [{"prompt": f"Secret question {i}?", "completion": f"Alice's secret answer {i}."} for i in range(8)]


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def job_request(name: str, train: str, output: str, **more) -> dict:
    return {"jobName": name, "customModelName": f"{name}-model", "roleArn": ROLE, "baseModelIdentifier": "tailor.tiny",
            "hyperParameters": {"epochCount": "1"}, "trainingDataConfig": {"s3Uri": train},
            "outputDataConfig": {"s3Uri": output}, **more}


def evaluation_request(name: str, data: str, output: str, model: str = "tailor.tiny", judge: str | None = None):
    automated = {"datasetMetricConfigs": [{"taskType": "QuestionAndAnswer", "metricNames": ["RougeL"],
                                           "dataset": {"name": "qa", "datasetLocation": {"s3Uri": data}}}]}
    if judge:
        automated["evaluatorModelConfig"] = {"bedrockEvaluatorModels": [{"modelIdentifier": judge}]}
        automated["datasetMetricConfigs"][0]["metricNames"].append("Builtin.Correctness")
    return {"jobName": name, "roleArn": ROLE, "evaluationConfig": {"automated": automated},
            "inferenceConfig": {"models": [{"bedrockModel": {"modelIdentifier": model}}]},
            "outputDataConfig": {"s3Uri": output}}


# --- storage belongs to principals -------------------------------------------------------------

def test_a_principal_reads_and_writes_only_its_own_buckets_until_the_operator_shares_one(server):
    alice, bob = server.client(principal="alice"), server.client(principal="bob")
    secret = server.put("s3://alice-data/train.jsonl", RECORDS, principal="alice")
    questions = server.put("s3://alice-data/eval.jsonl", [{"prompt": "Q?", "referenceResponse": "A."}])
    own = server.put("s3://bob-data/train.jsonl", RECORDS[:4] * 2, principal="bob")

    # Bob names alice's data in every field that reads or writes storage: each is refused, by name.
    attempts = {
        "trainingDataConfig.s3Uri": lambda: bob.create_model_customization_job(
            **job_request("steal", secret, "s3://bob-data/out/")),
        "validationDataConfig.validators[0].s3Uri": lambda: bob.create_model_customization_job(
            **job_request("steal-validation", own, "s3://bob-data/out/",
                          validationDataConfig={"validators": [{"s3Uri": secret}]})),
        "outputDataConfig.s3Uri": lambda: bob.create_model_customization_job(
            **job_request("write-over", own, "s3://alice-data/out/")),
        "evaluationConfig.automated.datasetMetricConfigs[0].dataset.datasetLocation.s3Uri":
            lambda: bob.create_evaluation_job(**evaluation_request("steal-eval", questions, "s3://bob-data/e/")),
    }
    messages = {}
    for field, attempt in attempts.items():
        code, message = error_of(attempt)
        assert code == "AccessDeniedException", (field, message)
        assert message.startswith(f"{field}: you may not "), message
        messages[field] = message
    bob_questions = server.put("s3://bob-data/q.jsonl", [{"prompt": "Q?", "referenceResponse": "A."}], "bob")
    code, message = error_of(lambda: bob.create_evaluation_job(
        **evaluation_request("write-eval", bob_questions, "s3://alice-data/e/")))
    assert code == "AccessDeniedException" and message.startswith("outputDataConfig.s3Uri: you may not write"), message
    assert bob.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
    assert bob.list_evaluation_jobs()["jobSummaries"] == []
    assert not (server.home / "buckets" / "alice-data" / "out").exists()

    # Another principal's bucket and a bucket nobody has look the same: nothing to learn by probing.
    _, nobody = error_of(lambda: bob.create_model_customization_job(
        **job_request("probe", "s3://nobody-here/train.jsonl", "s3://bob-data/out/")))
    assert nobody.replace("nobody-here", "alice-data").replace("s3://alice-data/train.jsonl", secret) == \
        messages["trainingDataConfig.s3Uri"]

    # The operator shares alice's bucket for reading: bob may now train on it, but still not write there.
    grant = server.tailor("buckets", "grant", "alice-data", "--principal", "bob", "--access", "read")
    assert grant.returncode == 0, grant.stderr
    arn = bob.create_model_customization_job(**job_request("shared", secret, "s3://bob-data/out/"))["jobArn"]
    bob.stop_model_customization_job(jobIdentifier=arn)
    code, _ = error_of(lambda: bob.create_model_customization_job(
        **job_request("write-over-2", own, "s3://alice-data/out/")))
    assert code == "AccessDeniedException"
    listed = json.loads(server.tailor("buckets", "list", "--json").stdout)
    assert {"name": "alice-data", "owner": "alice", "grants": [{"principal": "bob", "access": "read"}]} in listed

    # The operator's upload names the owner; it cannot drop a file into another principal's bucket.
    upload = server.tailor("data", "upload", str(server.home / "buckets" / "bob-data" / "train.jsonl"),
                           "s3://alice-data/from-bob.jsonl", "--principal", "bob")
    assert upload.returncode == 2 and "you may not write to s3://alice-data/from-bob.jsonl" in upload.stderr
    assert not (server.home / "buckets" / "alice-data" / "from-bob.jsonl").exists()

    # Alice's own job on her own data is untouched by all of this.
    arn = alice.create_model_customization_job(**job_request("mine", secret, "s3://alice-data/out/"))["jobArn"]
    alice.stop_model_customization_job(jobIdentifier=arn)


def test_a_new_output_bucket_is_claimed_by_whoever_names_it_first(server):
    alice, bob = server.client(principal="alice"), server.client(principal="bob")
    train = server.put("s3://alice-in/train.jsonl", RECORDS)
    arn = alice.create_model_customization_job(**job_request("claims", train, "s3://fresh-outputs/run/"))["jobArn"]
    alice.stop_model_customization_job(jobIdentifier=arn)
    assert (server.home / "buckets" / "fresh-outputs").is_dir()
    bob_train = server.put("s3://bob-in/train.jsonl", RECORDS, principal="bob")
    code, message = error_of(lambda: bob.create_model_customization_job(
        **job_request("late", bob_train, "s3://fresh-outputs/bob/")))
    assert code == "AccessDeniedException" and message.startswith("outputDataConfig.s3Uri:")


# --- the server fetches nothing a caller names ----------------------------------------------------

@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that counts every connection made to it (the SSRF target)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = sock.accept()
            except OSError:
                continue
            with connection:
                connection.settimeout(1)
                try:
                    seen.append(connection.recv(65536))
                except OSError:
                    seen.append(b"")

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    stop.set()
    thread.join(timeout=5)
    sock.close()


def test_evaluation_models_and_judges_cannot_name_an_address(server, listener):
    url, seen = listener
    bob = server.client(principal="bob")
    data = server.put("s3://bob-evals/qa.jsonl", [{"prompt": "Q?", "referenceResponse": "A."}], principal="bob")
    for spec in (f"openai:x@{url}/v1", f"bedrock:m@{url}", "openai:x@file:///etc/passwd"):
        for model, judge, field in ((spec, None, "inferenceConfig.models[0].bedrockModel.modelIdentifier"),
                                    ("tailor.tiny", spec, "bedrockEvaluatorModels[0].modelIdentifier")):
            code, message = error_of(lambda: bob.create_evaluation_job(
                **evaluation_request("ssrf", data, "s3://bob-evals/out/", model=model, judge=judge)))
            assert code == "ValidationException", message
            assert field in message and "cannot name an address" in message, message
    time.sleep(0.5)
    assert seen == []  # not one connection reached the target
    assert bob.list_evaluation_jobs()["jobSummaries"] == []


def test_base_models_cannot_name_server_folders_and_errors_do_not_tell_which_exist(server):
    bob = server.client(principal="bob")
    train = server.put("s3://bob-train/t.jsonl", RECORDS, principal="bob")

    def outcome(identifier: str) -> tuple[str, str]:
        code, message = error_of(lambda: bob.create_model_customization_job(
            **job_request("folder", train, "s3://bob-train/out/", baseModelIdentifier=identifier)))
        # "Did you mean" names catalog ids close to the text given, whatever exists on the server.
        return code, re.sub(r" Did you mean [^?]*\?", "", message.replace(repr(identifier), "ID"))

    # The contract's pattern lets bare names through, and the server resolves them relative to its
    # working directory (the checkout, here): folders that exist answer exactly like ones that do not.
    existing = [name for name in ("tailor", "tests", "docs") if os.path.isdir(name)]
    assert existing, "the server runs in the checkout"
    outcomes = {outcome(identifier) for identifier in [*existing, "nosuchfolder", "nothing-here-either"]}
    assert len(outcomes) == 1, outcomes
    code, message = outcomes.pop()
    assert code == "ResourceNotFoundException" and message.startswith("baseModelIdentifier: Unknown model ID")
    # Paths never get past the contract.
    for path in (str(server.home), "/etc", "./tailor", "org/hub-model"):
        assert outcome(path)[0] == "ValidationException"
    assert bob.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []


# --- limits before work -------------------------------------------------------------------------

def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _unsigned_post(endpoint: str, path: str, size: int, chunked: bool = False) -> tuple[int, dict]:
    """POST ``size`` bytes without credentials; returns the status and the parsed body."""
    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(size)
    connection.putrequest("POST", path)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    block = b"x" * (1 << 20)
    try:
        sent = 0
        while sent < size:
            piece = block[:min(len(block), size - sent)]
            connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            sent += len(piece)
        if chunked:
            connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before the whole body went out: the point
    response = connection.getresponse()
    status, body = response.status, json.loads(response.read() or b"{}")
    connection.close()
    return status, body


def test_oversized_bodies_are_refused_before_authentication_without_holding_memory(server):
    pid = server.process.pid
    before = _rss_kib(pid)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _unsigned_post(server.endpoint, "/model-customization-jobs", 50_000_000),
                                range(4)))
    elapsed = time.monotonic() - started
    growth_mib = (_rss_kib(pid) - before) / 1024
    print(f"4 x 50 MB unsigned POSTs: answered in {elapsed:.2f} s, server RSS {before / 1024:.0f} MiB "
          f"-> +{growth_mib:.1f} MiB")
    for status, body in answers:
        assert status == 413 and "larger than this server accepts" in body["message"]
    assert growth_mib < 50

    # Without a declared length (chunked), the body is counted while it arrives and refused at the limit.
    status, body = _unsigned_post(server.endpoint, "/model-customization-jobs", 30_000_000, chunked=True)
    assert status == 413 and "larger than this server accepts" in body["message"]
    status, body = _unsigned_post(server.endpoint, "/v1/chat/completions", 30_000_000)
    assert status == 413 and "larger than this server accepts" in body["error"]["message"]
    assert (_rss_kib(pid) - before) / 1024 < 80


# --- requests bound to their scope ----------------------------------------------------------------

def _signed(server, method: str, path: str, *, body: bytes = b"", region: str = "us-east-1",
            service: str = "bedrock", host: str | None = None, headers: dict | None = None,
            principal: str = "alice", secret: str | None = None, key_id: str | None = None):
    """Sign with botocore's own signer, optionally for another region, service or host, and send."""
    access_key_id, real_secret = server.keys[principal]
    parts = urlsplit(server.endpoint)
    request = AWSRequest(method=method, url=f"http://{host or parts.netloc}{path}", data=body,
                         headers={"Content-Type": "application/json", **(headers or {})})
    SigV4Auth(Credentials(key_id or access_key_id, secret or real_secret), service, region).add_auth(request)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request(method, path, body=body, headers=dict(request.headers.items()))
    response = connection.getresponse()
    status, payload = response.status, response.read()
    connection.close()
    return status, response.headers.get("x-amzn-ErrorType"), json.loads(payload or b"{}")


def test_signatures_must_be_for_this_server_and_failures_all_read_the_same(server):
    ok, _, _ = _signed(server, "GET", "/custom-models")
    assert ok == 200
    failures = {
        "another region": _signed(server, "GET", "/custom-models", region="eu-west-1"),
        "another service": _signed(server, "GET", "/custom-models", service="s3"),
        "another host": _signed(server, "GET", "/custom-models", host="bedrock.us-east-1.amazonaws.com"),
        "unknown key": _signed(server, "GET", "/custom-models", key_id="TKIAUNKNOWNUNKNOWN00"),
        "wrong secret": _signed(server, "GET", "/custom-models", secret="not-the-secret"),
        "unsigned payload": _signed(server, "POST", "/model-customization-jobs", body=b"{\"jobName\": \"x\"}",
                                    headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}),
    }
    messages = set()
    for reason, (status, code, body) in failures.items():
        assert (status, code) == (403, "AccessDeniedException"), reason
        messages.add(body["message"])
    assert len(messages) == 1, messages  # nothing tells an unknown key from a bad signature
    assert "could not be authenticated" in messages.pop()
    log = (server.home / "server.log").read_text()
    assert "UNSIGNED-PAYLOAD is not accepted for a request with a body" in log  # the reason, for the operator

    status, _, _ = _signed(server, "GET", "/custom-models", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert status == 200  # without a body there is nothing to swap, so the marker is fine


def test_api_docs_are_off_and_state_files_are_private(server):
    for path in ("/docs", "/redoc", "/openapi.json"):
        connection = http.client.HTTPConnection(*urlsplit(server.endpoint).netloc.split(":"), timeout=10)
        connection.request("GET", path)
        assert connection.getresponse().status == 404, path
        connection.close()
    for name in ("tailor.db", "server.key"):
        assert (server.home / name).stat().st_mode & 0o077 == 0, name
