"""What a running server answers, operation by operation of botocore's two Bedrock models.

``control.OPERATIONS`` and ``runtime.OPERATIONS`` are Tailor's lists of what it implements. Here a
real server on 127.0.0.1 is sent one signed request per operation of botocore's ``bedrock`` and
``bedrock-runtime`` models, at the method and URI of the operation's HTTP binding: every listed
operation must reach its route (whatever it then says about the empty request), and every other
one must get the documented answer for an operation Tailor does not implement
(``tailor.api.fallback``: ``UnknownOperationException``, 404, or 405 where the path is a listed
operation's). Then a few answers a person reads, through real boto3 clients: an unknown model at
runtime, and a bad ``s3Uri`` in the control plane.
"""

from __future__ import annotations

import http.client
import json
import re
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.loaders import Loader

from tailor.api.bedrock import control, runtime
from tests.api.conftest import ALIASES, running_server

UNKNOWN = "UnknownOperationException"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # No runner and no model files: nothing here may start a job or load a model.
    with running_server(tmp_path_factory.mktemp("operations") / "home", ALIASES, args=("--no-runner",)) as running:
        yield running


def every_operation() -> list[tuple[str, str, str, str]]:
    """``(service, operation, method, path)`` for every operation of both models, path parameters
    filled in with a plain value."""
    found = []
    for service in ("bedrock", "bedrock-runtime"):
        for name, spec in sorted(Loader().load_service_model(service, "service-2")["operations"].items()):
            uri = spec["http"]["requestUri"].split("?")[0]
            found.append((service, name, spec["http"]["method"], re.sub(r"\{[^}]+\}", "tailor.tiny", uri)))
    return found


def send(server, method: str, path: str) -> tuple[int, str | None]:
    """``(status, x-amzn-ErrorType)`` of a request signed by alice with an empty JSON body."""
    body = b"{}" if method in ("POST", "PUT", "PATCH") else b""
    key_id, secret = server.keys["alice"]
    request = AWSRequest(method=method, url=server.endpoint + path, data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key_id, secret), "bedrock", "us-east-1").add_auth(request)
    prepared = request.prepare()
    address = urlsplit(server.endpoint)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=dict(prepared.headers.items()))
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("x-amzn-ErrorType")
    finally:
        connection.close()


def test_the_lists_of_operations_name_real_operations():
    names = {name for _, name, _, _ in every_operation()}
    assert set(control.OPERATIONS) <= names and set(runtime.OPERATIONS) <= names


def test_every_listed_operation_is_answered_and_every_other_is_unknown(server):
    implemented = set(control.OPERATIONS) | set(runtime.OPERATIONS)
    wrong = []
    for service, name, method, path in every_operation():
        status, code = send(server, method, path)
        if name in implemented and code == UNKNOWN:
            wrong.append(f"{service} {name} ({method} {path}) is listed but answered {status} {code}")
        elif name not in implemented and (code != UNKNOWN or status not in (404, 405)):
            wrong.append(f"{service} {name} ({method} {path}) is not listed but answered {status} {code}")
    assert not wrong, "\n".join(wrong)


def test_a_mistyped_model_id_is_not_found_with_the_id_it_resembles(server):
    runtime_client = server.client("bedrock-runtime")
    body = json.dumps({"messages": [{"role": "user", "content": "Hi"}]})
    for call in (lambda: runtime_client.invoke_model(modelId="tailor.tinyy", body=body),
                 lambda: runtime_client.converse(modelId="tailor.tinyy",
                                                 messages=[{"role": "user", "content": [{"text": "Hi"}]}])):
        with pytest.raises(ClientError) as raised:
            call()
        error = raised.value.response["Error"]
        assert error["Code"] == "ResourceNotFoundException"
        assert error["Message"].startswith("Model tailor.tinyy not found:")
        assert error["Message"].endswith("Did you mean 'tailor.tiny'?")
        assert "Deployment" not in error["Message"]


def test_an_unknown_model_like_no_other_gets_no_suggestion(server):
    with pytest.raises(ClientError) as raised:
        server.client("bedrock-runtime").invoke_model(modelId="zzzz", body="{}")
    assert "Did you mean" not in raised.value.response["Error"]["Message"]


def test_a_bad_s3_uri_is_explained_in_words(server):
    with pytest.raises(ClientError) as raised:
        server.client().create_model_customization_job(
            jobName="words", customModelName="words-model", roleArn="arn:aws:iam::123456789012:role/r",
            baseModelIdentifier="tailor.tiny", trainingDataConfig={"s3Uri": "https://bucket/train.jsonl"},
            outputDataConfig={"s3Uri": "s3://bucket/out/"}, hyperParameters={})
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert ("trainingDataConfig.s3Uri: must be an s3:// URI such as s3://bucket/path/file.jsonl"
            in error["Message"])
    assert "[a-z0-9]" not in error["Message"]  # no regular expression
