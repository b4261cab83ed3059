"""Error envelopes read back by botocore's real parser and a real boto3 client, without a server."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HeadersDict
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.model import ServiceModel
from botocore.parsers import RestJSONParser

from tailor.api.bedrock import shapes
from tailor.api.bedrock.errors import error_code, error_response
from tailor.api.errors import HTTP_ERRORS, INTERNAL
from tailor.errors import (
    AccessDenied,
    Conflict,
    InvalidHyperparameters,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    TailorError,
)

MODEL = ServiceModel(shapes.service_model(), "bedrock")


def parse(status: int, headers: dict[str, str], body: dict, operation: str = "GetModelCustomizationJob") -> dict:
    """What botocore makes of an HTTP response (headers are case-insensitive on the wire)."""
    response = {"status_code": status, "headers": HeadersDict(headers), "body": json.dumps(body).encode()}
    return RestJSONParser().parse(response, MODEL.operation_model(operation).output_shape)


@pytest.mark.parametrize("error, code, status", [
    (InvalidInput("jobName: required"), "ValidationException", 400),
    (InvalidHyperparameters({"epochCount": "must be 1 to 5"}), "ValidationException", 400),
    (ModelUnavailable("Model x is unavailable. Map it in TAILOR_MODEL_ALIASES."), "ValidationException", 400),
    (NotFound("No job named faq-ft."), "ResourceNotFoundException", 404),
    (Conflict("Job faq-ft is Completed; only InProgress jobs can be stopped."), "ConflictException", 400),
    (AccessDenied("Unknown access key."), "AccessDeniedException", 403),
])
def test_domain_errors_reach_botocore_with_code_and_message(error, code, status):
    got_status, headers, body = error_response(error)
    assert (got_status, headers["x-amzn-ErrorType"], headers["Content-Type"]) == (status, code, "application/json")
    assert body == {"message": error.message}
    parsed = parse(got_status, headers, body)
    assert parsed["Error"] == {"Code": code, "Message": error.message}
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == status


def test_anything_else_is_a_generic_internal_error_without_details(caplog):
    status, headers, body = error_response(KeyError("/var/tailor/secret/path"))
    assert (status, headers["x-amzn-ErrorType"]) == (500, "InternalServerException")
    assert "secret" not in body["message"] and "Traceback" not in body["message"]
    assert parse(status, headers, body)["Error"]["Code"] == "InternalServerException"
    assert "secret" in caplog.text  # the details go to the server log instead
    assert error_code(TailorError("unclassified"))[0] == "InternalServerException"


def test_botocore_also_reads_the_colon_suffixed_form_aws_sends():
    headers = {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    assert parse(400, headers, {"message": "m"})["Error"] == {"Code": "ValidationException", "Message": "m"}


def test_every_code_and_status_agrees_with_the_bedrock_models():
    declared = {name: shape["error"]["httpStatusCode"]
                for service in ("bedrock-runtime", "bedrock")  # the control plane's wins a clash
                for name, shape in shapes.service_model(service)["shapes"].items() if shape.get("exception")}
    for answer in [*HTTP_ERRORS.values(), INTERNAL]:
        assert declared[answer.aws_code] == answer.aws_status, answer.aws_code


@pytest.mark.parametrize("cls", list(HTTP_ERRORS))
def test_the_aws_envelope_reads_the_one_table(cls):
    error = cls({"x": "y"}) if cls is InvalidHyperparameters else cls("m")
    status, headers, _ = error_response(error)
    assert (headers["x-amzn-ErrorType"], status) == (HTTP_ERRORS[cls].aws_code, HTTP_ERRORS[cls].aws_status)


class _Body:
    """The raw stream an AWSResponse reads its content from."""

    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def test_a_real_boto3_client_raises_the_modeled_exception():
    client = boto3.client("bedrock", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"max_attempts": 0}))
    error = Conflict("Job faq-ft is Completed; only InProgress jobs can be stopped.")

    def answer(request, **_):
        status, headers, body = error_response(error)
        return AWSResponse(request.url, status, HeadersDict(headers), _Body(json.dumps(body).encode()))

    client.meta.events.register("before-send.bedrock.StopModelCustomizationJob", answer)
    with pytest.raises(client.exceptions.ConflictException) as raised:
        client.stop_model_customization_job(jobIdentifier="faq-ft")
    assert isinstance(raised.value, ClientError)
    assert raised.value.response["Error"] == {"Code": "ConflictException", "Message": error.message}
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_a_message_echoing_a_lone_surrogate_is_still_sent():
    # "\ud800" arrives as a JSON escape; UTF-8 cannot encode it, so it goes back escaped.
    status, headers, body = error_response(InvalidInput("jobName: unknown value 'a\ud800'"))
    wire = json.dumps(body, ensure_ascii=False).encode("utf-8")  # how the response is rendered
    assert parse(status, headers, body)["Error"] == {"Code": "ValidationException",
                                                     "Message": "jobName: unknown value 'a\\ud800'"}
    assert b"\\\\ud800" in wire


# ------------------------------------------------------------ what answers when no route does


def fallback_client():
    """An app with one route and Tailor's fallback handlers, called in-process."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from tailor.api import fallback

    app = FastAPI()
    app.add_api_route("/model-customization-jobs", lambda: {"modelSummaries": []}, methods=["GET"])

    def crash():
        raise KeyError("/var/tailor/secret")

    app.add_api_route("/crash", crash, methods=["GET"])
    fallback.add_handlers(app)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/guardrails", 404, "UnknownOperationException"),  # a Bedrock operation Tailor lacks
    ("GET", "/model-customization-jobs/", 404, "UnknownOperationException"),  # no redirect to add a slash
    ("DELETE", "/model-customization-jobs", 405, "UnknownOperationException"),
    ("GET", "/v1/data_retention/storage/openai", 404, "UnknownOperationException"),  # Bedrock's own /v1 path
    ("GET", "/crash", 500, "InternalServerException"),
])
def test_unknown_routes_wrong_methods_and_crashes_answer_in_the_aws_envelope(method, path, status, code):
    response = fallback_client().request(method, path)
    assert response.status_code == status
    parsed = parse(status, dict(response.headers), response.json())
    assert parsed["Error"]["Code"] == code and parsed["Error"]["Message"]
    assert "secret" not in response.text
    if status == 405:
        assert response.headers["allow"] == "GET"
