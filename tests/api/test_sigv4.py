"""SigV4 verification against requests signed by the real botocore signer, and a real boto3 client.

Unit tests sign ``AWSRequest`` objects with ``botocore.auth.SigV4Auth`` and hand ``verify_request``
what a server would see on the wire; time is frozen by passing ``now`` equal to the signed
``x-amz-date``. The end-to-end test serves a tiny FastAPI app with uvicorn on 127.0.0.1 and calls it
with an unchanged ``boto3.client("bedrock")``, which is what proves the raw-path handling.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

import boto3
import pytest
import uvicorn
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from tailor.api.sigv4 import (
    AMZ_DATE_FORMAT,
    Credential,
    SigningScope,
    signed_forms,
    verify_request,
)
from tailor.errors import AccessDenied

KEY_ID = "TKIAEXAMPLE0000000001"
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY01"
KEYS = {KEY_ID: SECRET}
ENDPOINT = "https://bedrock.us-east-1.amazonaws.com"
JOB_ARN = ("arn:aws:bedrock:us-east-1:123456789012:model-customization-job/"
           "amazon.titan-text-express-v1:0:8k/abcdef123456")
ENCODED_ARN_PATH = ("/model-customization-jobs/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012"
                    "%3Amodel-customization-job%2Fabc")


def sign(method: str, url: str, *, body: bytes = b"", headers: dict[str, str] | None = None,
         params: dict | list | None = None, secret: str = SECRET, key_id: str = KEY_ID,
         token: str | None = None) -> dict:
    """Sign with botocore and return the keyword arguments a server would pass to verify_request."""
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {}, params=params)
    SigV4Auth(Credentials(key_id, secret, token), "bedrock", "us-east-1").add_auth(request)
    prepared = request.prepare()
    wire = urlsplit(prepared.url)
    sent = {name.lower(): value for name, value in prepared.headers.items()}
    sent.setdefault("host", wire.netloc)  # the HTTP client adds it; botocore signs it
    return {
        "method": prepared.method,
        "raw_path": wire.path,
        "query_string": wire.query,
        "headers": sent,
        "body": prepared.body or b"",
        "secret_for": KEYS.get,
        "now": datetime.strptime(sent["x-amz-date"], AMZ_DATE_FORMAT).replace(tzinfo=UTC),
    }


def forms_of(request: dict) -> list[AWSRequest]:
    """The requests botocore is asked to sign again for ``request`` (one per query form)."""
    signed = request["headers"]["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    return signed_forms(method=request["method"], raw_path=request["raw_path"], query_string=request["query_string"],
                        headers=request["headers"], signed_headers=signed, body=request["body"],
                        timestamp=request["headers"]["x-amz-date"])


def denied(**request) -> str:
    with pytest.raises(AccessDenied) as caught:
        verify_request(**request)
    message = caught.value.message
    assert SECRET not in message
    return message


# --- requests that verify -------------------------------------------------------------------

def test_get_without_query_returns_the_credential():
    credential = verify_request(**sign("GET", f"{ENDPOINT}/foundation-models"))
    assert credential == Credential(KEY_ID, credential.date, "us-east-1", "bedrock")
    assert len(credential.date) == 8


@pytest.mark.parametrize("params", [
    {"byProvider": "meta", "q": "two words", "plus": "a+b", "tilde": "x~y", "colon": "a:b/c"},
    {"name": "größe ✓", "emoji": "🙂"},
    [("k", "2"), ("k", "1"), ("k", "1 0"), ("a", "")],
])
def test_query_params_sent_form_encoded(params):
    # AWSRequest(params=...) goes out form-encoded ("+" for space) but is signed with "%20".
    request = sign("GET", f"{ENDPOINT}/foundation-models", params=params)
    assert request["query_string"]
    verify_request(**request)


def test_query_already_in_url_as_boto3_sends_it():
    # A boto3 client percent-encodes the query into the URL itself and botocore signs it verbatim.
    query = "b=two%20words&a=a%2Bb&a=%C3%BC&c=x~y"
    verify_request(**sign("GET", f"{ENDPOINT}/foundation-models?{query}"))


def test_raw_characters_left_in_a_hand_written_query():
    # Signed verbatim by botocore; a re-encoding verifier alone would reject it.
    request = sign("GET", f"{ENDPOINT}/custom-models?modelArn=arn:aws:bedrock:x/y&z=a+b")
    assert len(forms_of(request)) == 2
    verify_request(**request)


def test_a_query_whose_two_forms_agree_is_checked_once():
    assert len(forms_of(sign("GET", f"{ENDPOINT}/foundation-models?byProvider=meta"))) == 1


def test_a_query_that_is_not_utf8_has_only_the_verbatim_form():
    # AWSRequest(params=...) takes text, so bytes that are not UTF-8 were never signed that way.
    request = sign("GET", f"{ENDPOINT}/custom-models?nextToken=%FF%FE")
    assert len(forms_of(request)) == 1
    verify_request(**request)


def test_post_with_json_body():
    body = json.dumps({"jobName": "j", "hyperParameters": {"epochCount": "2"}}).encode()
    verify_request(**sign("POST", f"{ENDPOINT}/model-customization-jobs", body=body,
                          headers={"Content-Type": "application/json"}))


def test_path_with_an_encoded_arn_is_signed_double_encoded():
    request = sign("GET", ENDPOINT + ENCODED_ARN_PATH)
    assert request["raw_path"] == ENCODED_ARN_PATH  # sent on the wire exactly as given
    verify_request(**request)

    [form] = forms_of(request)
    canonical = SigV4Auth(Credentials(KEY_ID, SECRET), "bedrock", "us-east-1").canonical_request(form)
    assert canonical.splitlines()[1] == ("/model-customization-jobs/arn%253Aaws%253Abedrock"
                                         "%253Aus-east-1%253A123456789012%253A"
                                         "model-customization-job%252Fabc")
    # The decoded path (ASGI scope["path"]) loses the encoding botocore signed.
    assert "does not match" in denied(**{**request, "raw_path": unquote(request["raw_path"])})


def test_path_with_dot_segments_and_double_slashes():
    verify_request(**sign("GET", f"{ENDPOINT}/a//b/./c/../foundation-models/"))


def test_headers_with_extra_whitespace():
    request = sign("GET", f"{ENDPOINT}/foundation-models",
                   headers={"X-Custom": "  several   spaces\there  ", "X-Other": "a  b"})
    assert "x-custom" in request["headers"]["authorization"]
    verify_request(**request)


def test_security_token_is_just_a_signed_header():
    request = sign("GET", f"{ENDPOINT}/foundation-models", token="session-token-123")
    assert request["headers"]["x-amz-security-token"] == "session-token-123"
    assert "x-amz-security-token" in request["headers"]["authorization"]
    verify_request(**request)


def test_content_sha256_header_matching_the_body_or_unsigned_payload_without_a_body():
    body = b'{"a": 1}'
    verify_request(**sign("POST", f"{ENDPOINT}/x", body=body,
                          headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}))
    verify_request(**sign("GET", f"{ENDPOINT}/x", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}))


def test_unsigned_payload_with_a_body_is_refused_so_no_body_can_be_swapped():
    signed = sign("POST", f"{ENDPOINT}/x", body=b'{"a": 1}', headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert "UNSIGNED-PAYLOAD is not accepted" in denied(**{**signed, "body": b'{"a": 2}'})


@pytest.mark.parametrize(("scope", "expected"), [
    (SigningScope(region="eu-west-1"), "signed for region 'us-east-1'"),
    (SigningScope(region="us-east-1", service="s3"), "signed for service 'bedrock'"),
    (SigningScope(region="us-east-1", hosts=("127.0.0.1:8080", "localhost")), "signed for host"),
])
def test_a_signature_must_be_for_this_servers_region_service_and_host(scope, expected):
    assert expected in denied(**sign("GET", f"{ENDPOINT}/x"), scope=scope)
    verify_request(**sign("GET", f"{ENDPOINT}/x"), scope=SigningScope(
        region="us-east-1", hosts=("bedrock.us-east-1.amazonaws.com",)))


def test_date_header_instead_of_x_amz_date():
    # botocore's own pieces, driven by hand: with a Date header the signed time comes from it.
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/foundation-models",
                         headers={"Date": formatdate(when.timestamp(), usegmt=True)})
    request.context["timestamp"] = when.strftime(AMZ_DATE_FORMAT)
    auth = SigV4Auth(Credentials(KEY_ID, SECRET), "bedrock", "us-east-1")
    string_to_sign = auth.string_to_sign(request, auth.canonical_request(request))
    signature = auth.signature(string_to_sign, request)
    signed = auth.signed_headers(auth.headers_to_sign(request))
    headers = {"date": request.headers["Date"], "host": "bedrock.us-east-1.amazonaws.com",
               "authorization": f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, "
                                f"SignedHeaders={signed}, Signature={signature}"}
    credential = verify_request(method="GET", raw_path="/foundation-models", query_string="",
                                headers=headers, body=b"", secret_for=KEYS.get, now=when)
    assert credential.date == "20240506"


# --- requests that are refused, each with its reason ----------------------------------------

def test_tampered_body():
    request = sign("POST", f"{ENDPOINT}/model-customization-jobs", body=b'{"jobName": "a"}')
    assert "Signature does not match" in denied(**{**request, "body": b'{"jobName": "b"}'})


def test_tampered_path():
    request = sign("GET", f"{ENDPOINT}/custom-models/one")
    assert "Signature does not match" in denied(**{**request, "raw_path": "/custom-models/two"})


def test_tampered_query():
    request = sign("GET", f"{ENDPOINT}/foundation-models", params={"byProvider": "meta"})
    tampered = {**request, "query_string": "byProvider=amazon"}
    assert "Signature does not match" in denied(**tampered)


def test_wrong_secret():
    request = sign("GET", f"{ENDPOINT}/foundation-models", secret="not-the-secret")
    message = denied(**request)
    assert "Signature does not match" in message
    assert request["headers"]["authorization"].split("Signature=")[1] not in message


def test_unknown_access_key():
    request = sign("GET", f"{ENDPOINT}/foundation-models", key_id="TKIAUNKNOWN000000000")
    assert "Unknown access key id 'TKIAUNKNOWN000000000'" in denied(**request)


def test_missing_authorization_header():
    request = sign("GET", f"{ENDPOINT}/foundation-models")
    del request["headers"]["authorization"]
    assert "Missing Authorization header" in denied(**request)


def test_missing_signed_header():
    request = sign("GET", f"{ENDPOINT}/foundation-models", headers={"X-Custom": "v"})
    del request["headers"]["x-custom"]
    assert "Signed header 'x-custom' is missing" in denied(**request)


def test_unsupported_algorithm():
    request = sign("GET", f"{ENDPOINT}/foundation-models")
    headers = dict(request["headers"])
    headers["authorization"] = headers["authorization"].replace("AWS4-HMAC-SHA256", "AWS4-ECDSA")
    message = denied(**{**request, "headers": headers})
    assert "Unsupported signing algorithm 'AWS4-ECDSA'" in message


@pytest.mark.parametrize("skew", [timedelta(minutes=16), -timedelta(minutes=16)])
def test_request_time_too_far_from_server_time(skew):
    request = sign("GET", f"{ENDPOINT}/foundation-models")
    verify_request(**{**request, "now": request["now"] + timedelta(minutes=14)})
    assert "too far from server time" in denied(**{**request, "now": request["now"] + skew})


def test_credential_date_not_matching_x_amz_date():
    request = sign("GET", f"{ENDPOINT}/foundation-models")
    headers = dict(request["headers"])
    day = headers["x-amz-date"][:8]
    headers["authorization"] = headers["authorization"].replace(f"/{day}/", "/20000101/")
    message = denied(**{**request, "headers": headers})
    assert f"Credential date 20000101 does not match the request date {day}" in message


def test_content_sha256_header_not_matching_the_body():
    request = sign("POST", f"{ENDPOINT}/x", body=b"original",
                   headers={"X-Amz-Content-SHA256": hashlib.sha256(b"original").hexdigest()})
    assert "x-amz-content-sha256 header does not match" in denied(**{**request, "body": b"changed"})


@pytest.mark.parametrize("where", ["raw_path", "query_string"])
def test_a_target_that_does_not_read_back_as_a_url_is_refused(where):
    # botocore would sign only what precedes a "#", while the application reads all of it.
    request = sign("GET", f"{ENDPOINT}/custom-models?nextToken=abc")
    tampered = {**request, where: request[where] + "#more"}
    assert "cannot be read as a URL" in denied(**tampered)


def test_a_header_signers_leave_out_cannot_be_signed():
    request = sign("GET", f"{ENDPOINT}/foundation-models")
    headers = dict(request["headers"])
    headers["user-agent"] = "x"
    headers["authorization"] = headers["authorization"].replace("SignedHeaders=host;", "SignedHeaders=host;user-agent;")
    assert "SignedHeaders lists user-agent" in denied(**{**request, "headers": headers})


def test_malformed_authorization_header():
    request = sign("GET", f"{ENDPOINT}/foundation-models")
    headers = {**request["headers"], "authorization": "AWS4-HMAC-SHA256 Credential=TKIA/x"}
    assert "Malformed Authorization header: missing SignedHeaders, Signature" in denied(
        **{**request, "headers": headers})


# --- end to end: boto3 -> uvicorn -> FastAPI -> verify_request ------------------------------

def _app() -> FastAPI:
    app = FastAPI()
    app.state.raw_paths = []

    async def signed_by_a_known_key(request: Request) -> Credential:
        scope = request.scope
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]},{text}" if key in headers else text
        app.state.raw_paths.append(scope["raw_path"])
        return verify_request(method=request.method, raw_path=scope["raw_path"].decode("ascii"),
                              query_string=scope["query_string"].decode("ascii"),
                              headers=headers, body=await request.body(), secret_for=KEYS.get)

    @app.exception_handler(AccessDenied)
    async def access_denied(request: Request, error: AccessDenied) -> JSONResponse:
        return JSONResponse({"message": error.message}, status_code=403,
                            headers={"x-amzn-ErrorType": "AccessDeniedException"})

    @app.get("/foundation-models")
    async def list_foundation_models(credential: Credential = Depends(signed_by_a_known_key)):
        return {"modelSummaries": []}

    @app.get("/model-customization-jobs/{job_id:path}")
    async def get_job(job_id: str, credential: Credential = Depends(signed_by_a_known_key)):
        if job_id != JOB_ARN:
            return JSONResponse({"message": f"job {job_id} not found"}, status_code=404,
                                headers={"x-amzn-ErrorType": "ResourceNotFoundException"})
        return {"jobArn": job_id, "jobName": "abcdef123456", "outputModelName": "m",
                "roleArn": "arn:aws:iam::123456789012:role/r", "status": "InProgress",
                "creationTime": "2024-01-01T00:00:00Z", "baseModelArn": "b",
                "trainingDataConfig": {"s3Uri": "s3://b/t.jsonl"}, "validationDataConfig": {},
                "outputDataConfig": {"s3Uri": "s3://b/out/"}, "hyperParameters": {}}

    return app


@pytest.fixture
def server(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    app = _app()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # a free port, held from now on so nothing can take it
    port = listener.getsockname()[1]
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=uvicorn_server.run, kwargs={"sockets": [listener]},
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield app, f"http://127.0.0.1:{port}"
    uvicorn_server.should_exit = True
    thread.join(timeout=10)
    listener.close()


def _client(endpoint: str, secret: str = SECRET):
    return boto3.client("bedrock", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}))


def test_boto3_client_end_to_end(server):
    app, endpoint = server
    client = _client(endpoint)

    assert client.list_foundation_models()["modelSummaries"] == []

    job = client.get_model_customization_job(jobIdentifier=JOB_ARN)
    assert job["jobArn"] == JOB_ARN
    # boto3 sent the ARN as one encoded path segment, and it verified against that raw path.
    assert app.state.raw_paths[-1] == (
        b"/model-customization-jobs/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
        b"model-customization-job%2Famazon.titan-text-express-v1%3A0%3A8k%2Fabcdef123456")

    with pytest.raises(ClientError) as caught:
        client.get_model_customization_job(jobIdentifier=JOB_ARN + "-other")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"

    with pytest.raises(ClientError) as caught:
        _client(endpoint, secret="wrong-secret").list_foundation_models()
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "Signature does not match" in error["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
