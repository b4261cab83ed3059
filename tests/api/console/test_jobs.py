"""The console's Jobs routes against a real server, without a browser: the form's check (which
creates nothing), creating a job, its live event stream as rows are written and to its end, its
files — and that nobody else sees any of it, and that nothing changes without the CSRF token."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from tailor import trained
from tests.api.conftest import ALIASES, running_server
from tests.console.session import signed_in_client

RECORDS = [{"system": "You answer sums.", "messages": [{"role": "user", "content": f"What is {n} plus {n}?"},
                                                        {"role": "assistant", "content": f"{2 * n}."}]}
           for n in range(8)]


@pytest.fixture(scope="module")
def console_server(tmp_path_factory, tiny_models_dir):
    from tests.conftest import tiny_home

    home = tiny_home(tmp_path_factory.mktemp("console-jobs") / "home", tiny_models_dir)
    # No runner: jobs stay queued, and the test writes their metrics rows as a worker would (the
    # browser test, tests/console/test_jobs.py, watches a real one train).
    with running_server(home, ALIASES, args=("--no-runner",)) as server:
        server.put("s3://alice-sums/train.jsonl", RECORDS)
        yield server


@pytest.fixture(scope="module")
def alice(console_server):
    return signed_in_client(console_server.endpoint, *console_server.keys["alice"])


@pytest.fixture(scope="module")
def bob(console_server):
    return signed_in_client(console_server.endpoint, *console_server.keys["bob"])


def form(**changes) -> dict:
    return {"kind": "FINE_TUNING", "name": "sums", "model_name": "sums-model", "base_model": "tailor.tiny",
            "training_uri": "s3://alice-sums/train.jsonl", "output_uri": "s3://alice-sums-out/sums/",
            "hp.epochCount": "2", "hp.batchSize": "4", **changes}


def events(text: str) -> list[tuple[str | None, str, dict]]:
    """A server-sent event stream as (id, event, data) triples."""
    found = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            found.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return found


def test_the_form_shows_each_range_and_the_check_creates_nothing(console_server, alice):
    page = alice.get("/console/jobs/new?kind=FINE_TUNING")
    assert page.status_code == 200
    assert 'name="hp.epochCount"' in page.text and 'min="1"' in page.text and 'placeholder="25"' in page.text
    assert "Passes over the training data." in page.text
    for kind in ("CONTINUED_PRE_TRAINING", "REINFORCEMENT_FINE_TUNING", "DPO"):
        assert alice.get(f"/console/jobs/new?kind={kind}").status_code == 200, kind
    distillation = alice.get("/console/jobs/new?kind=DISTILLATION")
    assert distillation.status_code == 200 and 'name="teacher"' in distillation.text
    assert alice.get("/console/jobs/new?kind=IMPORTED").status_code == 400  # not a customization type
    no_teacher = alice.post_json("/console/api/jobs/check", form(kind="DISTILLATION")).json()
    assert "teacher" in no_teacher["problems"], no_teacher
    fields = alice.get("/console/api/jobs/hyperparameters?kind=REINFORCEMENT_FINE_TUNING&base_model=tailor.tiny")
    assert 'name="hp.trainingSamplePerPrompt"' in fields.json()["html"]

    incomplete = alice.post_json("/console/api/jobs/check", {"kind": "FINE_TUNING", "hp.epochCount": "3"}).json()
    assert incomplete["problems"]["training_uri"] == "Required." and not incomplete["complete"]
    wrong = alice.post_json("/console/api/jobs/check", form(**{"hp.epochCount": "0"})).json()
    assert wrong["problems"] == {"hp.epochCount": "must be between 1 and 100; got 0"}
    misnamed = alice.post_json("/console/api/jobs/check", form(name="my job!", model_name="m" * 64)).json()
    assert misnamed["problems"] == {"name": "Must be a letter or digit, then letters, digits, hyphens, dots and "
                                            "plus signs, got 'my job!'",
                                    "model_name": "Length must be between 1 and 63, got 64"}  # Bedrock's shapes
    foreign = alice.post_json("/console/api/jobs/check", form(training_uri="s3://someone-else/x.jsonl")).json()
    assert list(foreign["problems"]) == ["training_uri"]

    fine = alice.post_json("/console/api/jobs/check", form()).json()
    assert fine["problems"] == {} and fine["estimate"]["available"] and fine["estimate"]["fits"]
    assert "Estimated peak memory" in fine["estimate"]["text"]
    assert not (console_server.home / "buckets" / "alice-sums-out").exists()  # the job would claim it; a check does not
    with sqlite3.connect(console_server.home / "tailor.db") as db:
        assert db.execute("SELECT count(*) FROM buckets WHERE name = 'alice-sums-out'").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)

    unsigned = alice.post("/console/api/jobs/check", json=form())  # no X-CSRF-Token
    assert unsigned.status_code == 403
    no_js = alice.post("/console/jobs/new", data={**form(**{"hp.epochCount": "500"}), "csrf_token": alice.csrf})
    assert no_js.status_code == 400 and "must be between 1 and 100; got 500" in no_js.text


def _worker_writes(home, job_id: str, training: list[str], validation: list[str] = ()) -> None:
    """Rows as the job's worker flushes them into its scratch folder while it trains."""
    scratch = home / "jobs" / job_id / f".output{trained.PARTIAL}4242"
    for relative, header, lines in ((trained.TRAINING_METRICS, "step_number,epoch_number,training_loss", training),
                                    (trained.VALIDATION_METRICS, "step_number,epoch_number,validation_loss",
                                     validation)):
        path = scratch / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(header + "\n")
        with path.open("a") as file:
            file.write("".join(line + "\n" for line in lines))


def _end(home, job_id: str) -> None:
    """The worker's last act: the run published (its plot drawn), the job Completed."""
    from tailor.settings import Settings
    from tailor.store.db import open_store
    from tailor.store.jobs import Job, transition

    scratch = home / "jobs" / job_id / f".output{trained.PARTIAL}4242"
    (scratch / trained.LOSS_PLOT).write_bytes(b"\x89PNG\r\n\x1a\n")
    scratch.rename(home / "jobs" / job_id / "output")
    with open_store(Settings(home=home)).session() as session:
        transition(session.get(Job, job_id), "Completed")


def test_a_job_from_the_form_streams_its_curves_to_the_end_for_its_owner_only(console_server, alice, bob):
    home = console_server.home
    assert alice.post("/console/api/jobs", json=form()).status_code == 403  # no CSRF token: nothing created
    created = alice.post_json("/console/api/jobs", form())
    assert created.status_code == 201, created.text
    job_id, url = created.json()["id"], created.json()["url"]
    again = alice.post_json("/console/api/jobs", form(model_name="other-model"))
    assert again.status_code == 400 and "already exists" in again.json()["error"]["fields"]["name"]

    listing = alice.get("/console/jobs").text
    assert f'href="/console/jobs/{job_id}"' in listing and "FINE_TUNING" in listing
    assert f"/console/jobs/{job_id}" in alice.get("/console/jobs?status=InProgress&name=sum&type=FINE_TUNING").text
    assert f"/console/jobs/{job_id}" not in alice.get("/console/jobs?status=Failed").text
    assert f"/console/jobs/{job_id}" not in alice.get("/console/jobs?name=nothing-like-it").text
    assert f"/console/jobs/{job_id}" not in alice.get("/console/jobs?type=DPO").text
    assert f"/console/jobs/{job_id}" not in bob.get("/console/jobs").text
    page = alice.get(url)
    assert page.status_code == 200 and 'data-points="0"' in page.text and "epochCount" in page.text
    for path in (url, f"/console/api/jobs/{job_id}/live", f"/console/api/jobs/{job_id}/metrics",
                 f"/console/jobs/{job_id}/files/training.csv", f"/console/api/jobs/{job_id}/files"):
        assert bob.get(path).status_code == 404, path

    # The stream, while the "worker" (no runner here: the test writes as it would) trains.
    seen: list = []
    done = threading.Event()

    def follow() -> None:
        with alice.stream("GET", f"/console/api/jobs/{job_id}/live?interval=0.2", timeout=60) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            block = ""
            for line in stream.iter_lines():
                if line:
                    block += line + "\n"
                    continue
                seen.extend(events(block + "\n"))
                block = ""
        done.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()

    def metrics_until(step: int) -> None:
        deadline = time.monotonic() + 20
        while not any(step in data["training"].get("step", []) for _, kind, data in list(seen) if kind == "metrics"):
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)

    _worker_writes(home, job_id, ["0,0,2.5", "1,0,2.1"])
    metrics_until(1)
    _worker_writes(home, job_id, ["2,1,1.6", "3,1,1.2"], ["3,1,1.4"])
    metrics_until(3)
    assert bob.get(f"/console/jobs/{job_id}/files/training.csv").status_code == 404
    assert alice.get(f"/console/jobs/{job_id}/files/training.csv").text.startswith("step_number,")  # while it trains
    _end(home, job_id)
    assert done.wait(20), seen
    kinds = [kind for _, kind, _ in seen]
    assert kinds[-1] == "end" and seen[-1][2]["status"] == "Completed", seen
    batches = [data for _, kind, data in seen if kind == "metrics"]
    assert len(batches) >= 2  # rows came as they were written, not all at the end
    steps = [step for data in batches for step in data["training"].get("step", [])]
    assert steps == [0, 1, 2, 3]  # each step once
    assert [value for data in batches for value in data["validation"].get("valid_loss", [])] == [1.4]
    whole = alice.get(f"/console/api/jobs/{job_id}/metrics").json()  # the published folder now
    assert whole["status"] == "Completed" and whole["training"]["train_loss"] == [2.5, 2.1, 1.6, 1.2]
    last_id = [event_id for event_id, kind, _ in seen if kind == "metrics"][-1]
    assert last_id == "3:3"
    resumed = events(alice.get(f"/console/api/jobs/{job_id}/live", headers={"Last-Event-ID": last_id}).text)
    assert [kind for _, kind, _ in resumed] == ["status", "end"]  # nothing after the steps it had

    for name in ("training.csv", "validation.csv", "results.csv", "loss.png"):
        answer = alice.get(f"/console/jobs/{job_id}/files/{name}")
        assert answer.status_code == 200 and answer.content, name
    assert alice.get(f"/console/jobs/{job_id}/files/manifest.json").status_code == 404
    assert {file["name"] for file in alice.get(f"/console/api/jobs/{job_id}/files").json()["files"]} == {
        "training.csv", "validation.csv", "results.csv", "loss.png"}
    for path in (f"/console/jobs/{job_id}/files/loss.png", f"/console/api/jobs/{job_id}/live"):
        assert bob.get(path).status_code == 404, path

    assert bob.post(f"/console/jobs/{job_id}/stop", data={"csrf_token": bob.csrf}).status_code == 404
    assert alice.post(f"/console/jobs/{job_id}/stop").status_code == 403  # no CSRF token
    ended = alice.post(f"/console/jobs/{job_id}/stop", data={"csrf_token": alice.csrf})
    assert ended.status_code == 400 and "only an InProgress job can be stopped" in ended.text


def test_pause_resume_and_stop_are_the_apis_own_transitions(alice):
    created = alice.post_json("/console/api/jobs", form(name="sums-queued", model_name="sums-queued-model"))
    assert created.status_code == 201, created.text
    url = created.json()["url"]
    page = alice.get(url).text
    assert 'id="pause-job"' in page and 'id="stop-job"' in page
    for action, status in (("pause", "Paused"), ("resume", "InProgress"), ("stop", "Stopped")):
        answer = alice.post(f"{url}/{action}", data={"csrf_token": alice.csrf})  # a queued job: at once
        assert answer.status_code == 303 and answer.headers["location"] == url, answer.text
        assert alice.get(f"/console/api/jobs/{url.rsplit('/', 1)[1]}/metrics").json()["status"] == status
    assert alice.post(f"{url}/explode", data={"csrf_token": alice.csrf}).status_code == 404


def test_a_reinforcement_form_takes_a_grader_object_and_says_what_is_wrong_with_it(alice):
    rft = form(kind="REINFORCEMENT_FINE_TUNING", **{"hp.epochCount": "1", "hp.batchSize": "16"},
               grader_source="definition")
    page = alice.get("/console/jobs/new?kind=REINFORCEMENT_FINE_TUNING").text
    assert 'id="grader-drafts"' in page and 'name="grader_definition"' in page
    broken = alice.post_json("/console/api/jobs/check", {**rft, "grader_definition": "{not json"}).json()
    assert broken["problems"]["grader"].startswith("the grader object is not JSON")
    wrong = alice.post_json("/console/api/jobs/check", {**rft, "grader_definition": json.dumps(
        {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}"})}).json()
    assert list(wrong["problems"]) == ["grader"]
    fine = alice.post_json("/console/api/jobs/check", {**rft, "grader_definition": json.dumps(
        {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.answer}}",
         "operation": "eq"})}).json()
    assert fine["problems"] == {} and fine["estimate"]["available"] is False  # no pre-flight for RFT: said so
    assert "No pre-flight estimate" in fine["estimate"]["text"]
