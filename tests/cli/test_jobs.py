"""The ``tailor jobs|models|data`` commands against a live server, as a user runs them, and ``tailor
generate`` asking the custom models the jobs made, by name."""

from __future__ import annotations

import json
import re
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

    done = tailor(server, "jobs", "pause", "cli-job")
    assert done.returncode != 0 and "only a running job can be paused" in done.stderr
    assert tailor(server, "jobs", "create", "--name", "cli-paused", "--model", "tailor.tiny", "--train",
                  "s3://cli-bucket/train.jsonl", "--output", "s3://cli-bucket/out", "--hp", "epochCount=100").returncode == 0
    said = ""
    deadline = time.monotonic() + 60
    while "cli-paused is paused." not in said:  # pausing (at its next step), then paused
        assert time.monotonic() < deadline, said
        done = tailor(server, "jobs", "pause", "cli-paused")
        assert done.returncode == 0, done.stderr
        said = done.stdout + done.stderr
        time.sleep(0.5)
    done = tailor(server, "jobs", "resume", "cli-paused")
    assert done.returncode == 0 and "cli-paused is queued." in done.stdout + done.stderr
    assert tailor(server, "jobs", "stop", "cli-paused").returncode == 0


def test_follow_a_job_to_its_end_then_ask_its_model_by_name(server, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"A{i}."}) + "\n" for i in range(8)))
    uploaded = tailor(server, "data", "upload", str(data), "s3://taught/train.jsonl", "--principal", "alice")
    assert uploaded.returncode == 0, uploaded.stderr
    # 20 epochs: enough for the tiny model to learn these answers exactly.
    created = tailor(server, "jobs", "create", "--name", "taught", "--model", "tailor.tiny", "--train",
                     "s3://taught/train.jsonl", "--output", "s3://taught/out", "--hp", "epochCount=20")
    assert created.returncode == 0, created.stderr

    access_key_id, secret = server.keys["alice"]
    env = {**server.env, "TAILOR_ENDPOINT": server.endpoint, "AWS_ACCESS_KEY_ID": access_key_id,
           "AWS_SECRET_ACCESS_KEY": secret}
    following = {command: subprocess.Popen([sys.executable, "-m", "tailor", "jobs", command, "taught", "--follow",
                                            "--interval", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True, env=env)
                 for command in ("events", "logs")}
    status_while_following = server.client().get_model_customization_job(jobIdentifier="taught")["status"]
    outputs = {command: process.communicate(timeout=300) for command, process in following.items()}
    assert status_while_following == "InProgress"  # so what they printed came while they followed
    for command, process in following.items():
        assert process.returncode == 0, outputs[command][1]

    events = outputs["events"][0].splitlines()
    assert "Created customization job taught" in events[0]
    steps = [line for line in events if re.search(r"  Step \d+/\d+: training metrics  .*train_loss=", line)]
    assert len(steps) >= 20
    assert events[-1].endswith("The job has successfully completed.")
    # Asked again at once, the same events (a metrics event's time is when its file was last written).
    again = tailor(server, "jobs", "events", "taught").stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in again] == [line.split("  ", 1)[1] for line in events]
    assert "Training: " in outputs["logs"][0]

    # The custom model by name and ARN, as its principal (the one `tailor keys create` saved), and its
    # output folder. (A LoRA model's ARN gives its base with the adapter on top: that loading is
    # tests/serve/test_load_target.py; which Target an ARN means, tests/api/test_serving.py.)
    assert tailor(server, "keys", "create", "--principal", "alice").returncode == 0
    by_name = tailor(server, "generate", "--model", "taught-model", "Q3?")
    assert (by_name.returncode, by_name.stdout) == (0, "A3.\n"), by_name.stderr
    model_arn = server.client().get_model_customization_job(jobIdentifier="taught")["outputModelArn"]
    by_arn = tailor(server, "generate", "--model", model_arn, "--principal", "alice", "Q3?")
    assert (by_arn.returncode, by_arn.stdout) == (0, "A3.\n"), by_arn.stderr
    job_id = created.stdout.strip().rsplit("/", 1)[1]
    by_folder = tailor(server, "generate", "--model", str(server.home / "jobs" / job_id / "output"), "Q3?")
    assert (by_folder.returncode, by_folder.stdout) == (0, "A3.\n"), by_folder.stderr

    others = tailor(server, "generate", "--model", "taught-model", "--principal", "bob", "Q3?")
    assert others.returncode == 2 and "Traceback" not in others.stderr
    assert others.stderr.startswith("error: Unknown model 'taught-model': not a catalog id or alias")
