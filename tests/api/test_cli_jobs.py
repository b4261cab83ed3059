"""The ``tailor jobs|models|data`` commands against a live server, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow


def tailor(server, *args: str, principal: str = "alice") -> subprocess.CompletedProcess:
    access_key_id, secret = server.keys[principal]
    env = {**server.env, "TAILOR_ENDPOINT": server.endpoint, "AWS_ACCESS_KEY_ID": access_key_id,
           "AWS_SECRET_ACCESS_KEY": secret}
    return subprocess.run([sys.executable, "-m", "tailor", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_upload_create_watch_and_list(server, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"A{i}."}) + "\n" for i in range(8)))
    done = tailor(server, "data", "upload", str(data), "s3://cli-bucket/train.jsonl", "--principal", "alice")
    assert done.returncode == 0, done.stderr
    assert (server.home / "buckets" / "cli-bucket" / "train.jsonl").read_text() == data.read_text()

    done = tailor(server, "jobs", "create", "--name", "cli-job", "--model", "tailor.tiny",
                  "--train", "s3://cli-bucket/train.jsonl", "--output", "s3://cli-bucket/out", "--hp", "epochCount=1")
    assert done.returncode == 0, done.stderr
    arn = done.stdout.strip()
    assert arn.startswith("arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tailor.tiny/")

    deadline = time.monotonic() + 120
    while json.loads(tailor(server, "jobs", "get", "cli-job").stdout)["status"] == "InProgress":
        assert time.monotonic() < deadline
        time.sleep(1)
    job = json.loads(tailor(server, "jobs", "get", arn).stdout)
    assert job["status"] == "Completed", job

    assert tailor(server, "jobs", "list", "--status", "Completed").stdout.split("\t")[:2] == ["cli-job", "Completed"]
    assert "cli-job-model\tActive" in tailor(server, "models", "list").stdout
    assert "Training: " in tailor(server, "jobs", "logs", "cli-job").stdout
    assert tailor(server, "jobs", "list", principal="bob").stdout == ""

    done = tailor(server, "jobs", "stop", "cli-job")
    assert done.returncode == 2 and "error: ConflictException: Job cli-job is Completed" in done.stderr
    assert "Traceback" not in done.stderr
