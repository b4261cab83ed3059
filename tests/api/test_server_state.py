"""Truthful failure around the server's own state: a damaged database, an unwritable job folder, and
``--insecure-local`` reachable only by this machine's own clients."""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
import subprocess
import sys

import boto3
import pytest

from tests.api.conftest import free_port, insecure_local_server, running_server

ROLE = "arn:aws:iam::000000000000:role/Tailor"


def tailor(home, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tailor", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TAILOR_HOME": str(home)})


def test_a_damaged_database_is_refused_at_start_and_doctor_says_why(home):
    assert tailor(home, "keys", "create", "--principal", "alice").returncode == 0
    assert tailor(home, "doctor").returncode == 0
    database = home / "tailor.db"
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # Random bytes inside the pages: SQLite can still open it, so only a check finds it.
    pages = bytearray(database.read_bytes())
    page_size = int.from_bytes(pages[16:18], "big")
    pages[page_size * 2 + 8: page_size * 2 + 400] = os.urandom(392)
    database.write_bytes(bytes(pages))
    served = tailor(home, "serve", "--port", str(free_port()), timeout=60)
    assert served.returncode == 2, served.stderr
    assert "error: The database is damaged" in served.stderr and "Traceback" not in served.stderr
    doctor = tailor(home, "doctor")
    assert doctor.returncode == 1 and "problem  database: damaged" in doctor.stdout, doctor.stdout

    # The header overwritten: not a database at all.
    database.write_bytes(b"\0" * 100 + bytes(pages[100:]))
    served = tailor(home, "serve", "--port", str(free_port()))
    assert served.returncode == 2 and "file is not a database" in served.stderr, served.stderr
    assert "Traceback" not in served.stderr
    doctor = tailor(home, "doctor")
    assert doctor.returncode == 1 and "file is not a database" in doctor.stdout


@pytest.mark.slow
def test_an_unwritable_job_folder_fails_jobs_with_the_reason_and_the_queue_goes_on(home):
    (home / "jobs").write_text("a file where the jobs folder should be")
    with running_server(home, {}) as server:
        bedrock = server.client()
        train = server.put("s3://bkt/t.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(8)])
        arns = [bedrock.create_model_customization_job(
            jobName=f"job-{n}", customModelName=f"model-{n}", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
            hyperParameters={"epochCount": "1"}, trainingDataConfig={"s3Uri": train},
            outputDataConfig={"s3Uri": "s3://bkt/out/"})["jobArn"] for n in range(2)]
        for arn in arns:  # both fail (the second is not stuck behind the first), and say why
            job = server.wait_for(arn, {"Failed", "Completed"}, timeout=30)
            assert job["status"] == "Failed"
            assert job["failureMessage"].startswith("The server could not start this job's worker")
            assert str(home) not in job["failureMessage"]
        (home / "jobs").unlink()  # the operator fixes it: the next job runs
        arn = bedrock.create_model_customization_job(
            jobName="job-after", customModelName="model-after", roleArn=ROLE, baseModelIdentifier="tailor.tiny",
            hyperParameters={"epochCount": "1"}, trainingDataConfig={"s3Uri": train},
            outputDataConfig={"s3Uri": "s3://bkt/out/"})["jobArn"]
        assert server.wait_for(arn, {"Failed", "Completed"}, timeout=240)["status"] == "Completed"
    assert (home / "server.log").read_text().count("Traceback") == 0


def _raw(port: int, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    status, payload = response.status, json.loads(response.read() or b"{}")
    connection.close()
    return status, payload


def test_insecure_local_serves_only_this_machines_own_clients(home):
    with insecure_local_server(home) as (port, _):
        # What a web page the user visits could send: a "simple" cross-site POST, no credentials.
        job = json.dumps({"jobName": "from-a-web-page", "customModelName": "m", "roleArn": ROLE,
                          "baseModelIdentifier": "tailor.tiny", "trainingDataConfig": {"s3Uri": "s3://b/t.jsonl"},
                          "outputDataConfig": {"s3Uri": "s3://b/o/"}}).encode()
        attacks = {
            "another site's page": {"Host": f"127.0.0.1:{port}", "Origin": "https://evil.example",
                                    "Content-Type": "text/plain"},
            "a sandboxed page": {"Host": f"127.0.0.1:{port}", "Origin": "null", "Content-Type": "text/plain"},
            "a rebinding DNS name": {"Host": f"evil.example:{port}", "Content-Type": "application/json"},
            "a cross-site fetch": {"Host": f"localhost:{port}", "Sec-Fetch-Site": "cross-site"},
        }
        for attack, headers in attacks.items():
            status, body = _raw(port, "POST", "/model-customization-jobs", headers, job)
            assert status == 403, attack
            assert body["message"].startswith("Refused under --insecure-local"), (attack, body)
            status, body = _raw(port, "GET", "/v1/models", headers)
            assert status == 403 and body["error"]["message"].startswith("Refused under --insecure-local"), attack
            assert body["error"]["code"] == "permission_denied"  # openai.PermissionDeniedError

        # This machine's own client (boto3, a same-origin page) still works without credentials.
        local = boto3.client("bedrock", endpoint_url=f"http://localhost:{port}", region_name="us-east-1",
                             aws_access_key_id="CAROL", aws_secret_access_key="anything")
        assert local.list_model_customization_jobs()["modelCustomizationJobSummaries"] == []
        status, _ = _raw(port, "GET", "/v1/models", {"Host": f"127.0.0.1:{port}",
                                                     "Origin": f"http://127.0.0.1:{port}"})
        assert status == 200


def test_listening_on_every_interface_needs_the_public_host_names(home):
    done = tailor(home, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2 and "needs TAILOR_PUBLIC_HOSTS" in done.stderr and "Traceback" not in done.stderr


def test_doctor_reports_a_replaced_server_key_and_unowned_buckets(home):
    from cryptography.fernet import Fernet

    assert tailor(home, "keys", "create", "--principal", "alice").returncode == 0
    (home / "buckets" / "from-before-ownership").mkdir(parents=True)
    doctor = tailor(home, "doctor")
    assert doctor.returncode == 0, doctor.stdout  # warnings only
    assert "warning  buckets: 1 local bucket(s) belong to no principal" in doctor.stdout
    assert "ok       access keys: 1 readable" in doctor.stdout
    assert "ok       scratch: no leftovers of ended jobs" in doctor.stdout

    # A job whose worker was killed mid-write: its scratch and unpublished output are leftovers.
    from tailor.settings import Settings
    from tailor.store.db import open_store, utcnow
    from tailor.store.jobs import Job, transition

    work_dir = home / "jobs" / "killed000001"
    (work_dir / ".output.partial-4242").mkdir(parents=True)
    (work_dir / ".output.partial-4242" / "weights.bin").write_bytes(b"\0" * 2_000_000)
    (work_dir / "output").mkdir()
    now = utcnow()
    with open_store(Settings(home=home)).session() as session:
        job = Job(id="killed000001", arn="arn:job/killed", name="killed", principal="alice", status="InProgress",
                  phase="running", customization_type="FINE_TUNING", base_model_id="tailor.tiny",
                  base_model_arn="arn:fm/tailor.tiny", output_model_name="m", role_arn="arn:role", spec={},
                  status_details={}, progress={}, validation_losses=[], stop_requested=False,
                  work_dir=str(work_dir), created_at=now, last_modified_at=now)
        session.add(job)
        transition(job, "Failed", failure_message="killed")
    doctor = tailor(home, "doctor")
    assert "warning  scratch: 2 leftover folder(s) of ended jobs (2.0 MB)" in doctor.stdout, doctor.stdout

    (home / "server.key").write_bytes(Fernet.generate_key())
    doctor = tailor(home, "doctor")
    assert doctor.returncode == 1
    assert "problem  access keys: 1 of 1 secrets cannot be decrypted" in doctor.stdout
