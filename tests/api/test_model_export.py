"""Model exports through ``/tailor/v1`` and ``tailor models export``, against one real server: a
LoRA custom model trained through boto3 is exported as merged Hugging Face weights and as GGUF, each
downloaded through its signed link (no key) and loaded back; another principal cannot export it or
see the export; a forged, altered, another export's or expired link is refused with a 4xx."""

from __future__ import annotations

import io
import tarfile
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.api.conftest import ALIASES, running_server
from tests.api.test_tailor_routes import api
from tests.conftest import tiny_home

ROLE = "arn:aws:iam::000000000000:role/tailor"
TRAIN = "s3://alice-export/train.jsonl"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    home = tiny_home(tmp_path_factory.mktemp("export") / "home", tiny_models_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TAILOR_MAX_CONCURRENT_JOBS", "2")  # the two exports run side by side
        with running_server(home, ALIASES) as running:
            yield running


@pytest.fixture(scope="module")
def model_arn(server) -> str:
    """A LoRA custom model of alice's, trained for real through boto3 (one short epoch)."""
    server.put(TRAIN, [{"prompt": f"Code {i}?", "completion": f"The code is {i * 7}."} for i in range(8)])
    bedrock = server.client()
    arn = bedrock.create_model_customization_job(
        jobName="to-export", customModelName="exportable", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
        hyperParameters={"tuningMethod": "lora", "epochCount": "1", "batchSize": "8"},
        trainingDataConfig={"s3Uri": TRAIN}, outputDataConfig={"s3Uri": "s3://alice-export/out"})["jobArn"]
    job = server.wait_for(arn, {"Completed", "Failed"})
    assert job["status"] == "Completed", job.get("failureMessage")
    return job["outputModelArn"]


@pytest.fixture(scope="module")
def exports(server, model_arn) -> dict[str, dict]:
    """alice's model exported in both formats through the API, each as GET shows it at the end."""
    with api(server) as alice:
        created = {fmt: alice.post("/custom-models/exports", json={"modelIdentifier": model_arn, "format": fmt})
                   for fmt in ("hf", "gguf")}
        for answer in created.values():
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "InProgress" and "downloadUrl" not in answer.json()
        return {fmt: finished(alice, answer.json()["exportId"]) for fmt, answer in created.items()}


def finished(client: httpx.Client, export_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = client.get(f"/custom-models/exports/{export_id}").json()
        if shown["status"] not in ("InProgress", "Stopping"):
            return shown
        time.sleep(0.3)
    raise AssertionError(f"export still {shown}")


def aws_error(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["x-amzn-ErrorType"] == code
    return answer.json()["message"]


def test_export_both_formats_and_download_them(server, model_arn, exports, tmp_path):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shown = exports
    with api(server) as alice:
        listed = {row["exportId"] for row in alice.get("/custom-models/exports").json()["exports"]}
    assert {row["exportId"] for row in shown.values()} <= listed

    for row in shown.values():
        assert row["status"] == "Completed", row
        assert row["modelArn"] == model_arn and row["modelName"] == "exportable" and row["checks"]
        assert row["stage"] == "done" and str(server.home) not in str(row)  # no server paths shown
        assert row["downloadExpiresAt"] > time.time() + 3000  # export_link_seconds: an hour by default
    # The link alone downloads the file: no key, as a browser follows it.
    hf = httpx.get(shown["hf"]["downloadUrl"], timeout=60)
    assert hf.status_code == 200 and len(hf.content) == shown["hf"]["sizeBytes"]
    with tarfile.open(fileobj=io.BytesIO(hf.content)) as archive:
        archive.extractall(tmp_path, filter="data")
    folder = tmp_path / "exportable-hf"
    assert not list(folder.glob("adapter*"))  # merged: a plain model
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Code 3?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    assert model.generate(ids, do_sample=False, max_new_tokens=8).shape[1] > ids.shape[1]

    file = tmp_path / "exportable.gguf"
    file.write_bytes(httpx.get(shown["gguf"]["downloadUrl"], timeout=60).content)
    reader = gguf.GGUFReader(file)
    assert reader.fields["general.architecture"].contents() == "llama"
    assert len(reader.tensors) == len(model.state_dict())


def test_another_principal_cannot_export_or_see_it(server, model_arn, exports):
    with api(server, "bob") as bob:
        for identifier in (model_arn, "exportable"):
            message = aws_error(bob.post("/custom-models/exports", json={"modelIdentifier": identifier,
                                                                         "format": "hf"}),
                                404, "ResourceNotFoundException")
            assert identifier in message
        mine = exports["gguf"]["exportId"]
        aws_error(bob.get(f"/custom-models/exports/{mine}"), 404, "ResourceNotFoundException")
        assert mine not in {row["exportId"] for row in bob.get("/custom-models/exports").json()["exports"]}


@pytest.mark.parametrize("body, field", [
    ({"modelIdentifier": "exportable", "format": "onnx"}, "format"),
    ({"format": "hf"}, "modelIdentifier"),
    ({"modelIdentifier": 7, "format": "hf"}, "modelIdentifier"),
])
def test_bad_requests_name_the_field(server, body, field):
    with api(server) as alice:
        assert aws_error(alice.post("/custom-models/exports", json=body), 400, "ValidationException").startswith(field)


def test_links_cannot_be_forged_altered_moved_or_kept(server, exports):
    from tailor.services.model_export import download_signature
    from tailor.settings import Settings

    first, second = exports["gguf"], exports["hf"]
    url = urlsplit(first["downloadUrl"])
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    base = f"{server.endpoint}/tailor/v1/custom-models/exports"

    def fetch(export_id: str, **params) -> httpx.Response:
        return httpx.get(f"{base}/{export_id}/download", params={**query, **params}, timeout=60)

    assert fetch(first["exportId"]).status_code == 200
    forged = "0" * len(query["signature"])
    aws_error(fetch(first["exportId"], signature=forged), 404, "ResourceNotFoundException")
    aws_error(fetch(first["exportId"], expires=str(int(query["expires"]) + 86400)), 404, "ResourceNotFoundException")
    aws_error(fetch(second["exportId"]), 404, "ResourceNotFoundException")  # first's signature on another export
    aws_error(fetch(first["exportId"], expires="soon"), 404, "ResourceNotFoundException")
    aws_error(fetch("server.key"), 404, "ResourceNotFoundException")
    assert fetch("../../server.key").status_code == 404
    # A genuine signature (made with the server's key) whose time has passed.
    past = int(time.time()) - 5
    genuine = download_signature(Settings(home=server.home), first["exportId"], past)
    assert "expired" in aws_error(fetch(first["exportId"], expires=str(past), signature=genuine),
                                  403, "AccessDeniedException")


def test_deleting_an_export_stops_it_or_removes_its_file_and_link(server, model_arn, exports):
    with api(server) as alice:
        running = alice.post("/custom-models/exports", json={"modelIdentifier": model_arn, "format": "hf"}).json()
        stopping = alice.delete(f"/custom-models/exports/{running['exportId']}").json()
        assert stopping["status"] in ("Stopping", "Stopped") and not stopping["deleted"]
        assert finished(alice, running["exportId"])["status"] == "Stopped"
        gone = alice.delete(f"/custom-models/exports/{running['exportId']}").json()
        assert gone["deleted"] and gone["status"] == "Stopped"
        aws_error(alice.get(f"/custom-models/exports/{running['exportId']}"), 404, "ResourceNotFoundException")
        with api(server, "bob") as bob:  # another's export is not found, not deletable
            aws_error(bob.delete(f"/custom-models/exports/{exports['hf']['exportId']}"), 404,
                      "ResourceNotFoundException")
        link = exports["hf"]["downloadUrl"]
        assert httpx.get(link, timeout=60).status_code == 200
        assert alice.delete(f"/custom-models/exports/{exports['hf']['exportId']}").json()["deleted"]
        aws_error(httpx.get(link, timeout=60), 404, "ResourceNotFoundException")  # the link ends with the export
    assert not (server.home / "exports" / exports["hf"]["exportId"]).exists()


def test_cli_exports_a_custom_model_by_name(server, model_arn, tmp_path, monkeypatch):
    """``tailor models export`` as the server's operator (same TAILOR_HOME), in this process."""
    from typer.testing import CliRunner

    from tailor.cli import app

    monkeypatch.setenv("TAILOR_HOME", str(server.home))
    done = CliRunner().invoke(app, ["models", "export", "exportable", "--principal", "alice", "--format", "gguf",
                                    "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "exportable.gguf").is_file()
    assert "read back equal" in done.output and "exportable.gguf" in done.output
    refused = CliRunner().invoke(app, ["models", "export", "exportable", "--principal", "bob",
                                       "--out", str(tmp_path / "x")])
    assert refused.exit_code == 2 and "not found" in refused.output
    assert not (tmp_path / "x").exists()


def test_console_model_page_exports_and_links_the_download(server, model_arn, exports):
    from tests.console.session import signed_in_client

    alice, bob = (signed_in_client(server.endpoint, *server.keys[who]) for who in ("alice", "bob"))
    try:
        page = alice.get("/console/models/exportable")
        assert page.status_code == 200 and 'id="export-form"' in page.text
        # The finished exports are listed with their download links, which work.
        assert f'/tailor/v1/custom-models/exports/{exports["gguf"]["exportId"]}/download?expires=' in page.text
        listed = alice.get("/console/api/models/exportable/exports").json()["exports"]
        ready = next(e for e in listed if e["exportId"] == exports["gguf"]["exportId"])
        assert ready["downloadUrl"].startswith("/tailor/v1/custom-models/exports/")
        assert alice.get(ready["downloadUrl"]).status_code == 200
        # Export needs the CSRF token, a known format, and the caller's own model.
        assert alice.post("/console/api/models/exportable/export", json={"format": "hf"}).status_code == 403
        bad = alice.post_json("/console/api/models/exportable/export", {"format": "zip"})
        assert bad.status_code == 400 and "format" in bad.text
        assert bob.post_json("/console/api/models/exportable/export", {"format": "hf"}).status_code == 404
        queued = alice.post_json("/console/api/models/exportable/export", {"format": "gguf"})
        assert queued.status_code == 201 and queued.json()["status"] == "InProgress"
        listed = alice.get("/console/api/models/exportable/exports").json()["exports"]
        assert listed[0]["exportId"] == queued.json()["exportId"]  # newest first, followed by models.js
    finally:
        alice.close()
        bob.close()
