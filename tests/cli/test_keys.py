"""``tailor keys create|list|revoke`` and where the CLI's server calls find their key, against a
live server: a newcomer's ``keys create`` then ``jobs list`` just works, a revoked key is refused
by the server, and a missing key or server is one plain sentence."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import free_port

CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def tailor(home, *args: str, endpoint: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """``tailor ARGS`` as a newcomer runs it: no AWS variables, only TAILOR_HOME (and the endpoint)."""
    clean = {name: value for name, value in os.environ.items() if name not in CREDENTIAL_VARIABLES}
    clean.update(TAILOR_HOME=str(home), **env)
    if endpoint:
        clean["TAILOR_ENDPOINT"] = endpoint
    done = subprocess.run([sys.executable, "-m", "tailor", *args], capture_output=True, text=True, env=clean,
                          timeout=120)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def created_key(done: subprocess.CompletedProcess) -> tuple[str, str]:
    assert done.returncode == 0, done.stderr
    key_id = re.search(r"^aws_access_key_id = (\S+)$", done.stdout, re.M).group(1)
    secret = re.search(r"^aws_secret_access_key = (\S+)$", done.stdout, re.M).group(1)
    return key_id, secret


def test_the_key_keys_create_prints_is_the_one_jobs_and_models_use(server, tmp_path):
    key_id, secret = created_key(tailor(server.home, "keys", "create", "--principal", "carol"))
    saved = server.home / "cli-credentials.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text()) == {"access_key_id": key_id, "secret_access_key": secret,
                                             "principal": "carol"}

    for command in (["jobs", "list"], ["models", "list"]):
        done = tailor(server.home, *command, endpoint=server.endpoint)
        assert (done.returncode, done.stdout) == (0, ""), done.stderr

    # The CLI acts as carol: her job is hers, not alice's.
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}?", "completion": f"A{i}."}) + "\n" for i in range(8)))
    assert tailor(server.home, "data", "upload", str(data), "s3://carol-data/t.jsonl", "--principal", "carol"
                  ).returncode == 0
    done = tailor(server.home, "jobs", "create", "--name", "carols", "--model", "tailor.tiny", "--train",
                  "s3://carol-data/t.jsonl", "--output", "s3://carol-data/out/", "--hp", "epochCount=1",
                  endpoint=server.endpoint)
    assert done.returncode == 0, done.stderr
    assert tailor(server.home, "jobs", "list", endpoint=server.endpoint).stdout.startswith("carols\t")
    assert server.client(principal="alice").list_model_customization_jobs()["modelCustomizationJobSummaries"] == []

    listed = tailor(server.home, "keys", "list").stdout.splitlines()
    assert [line.split("\t")[1] for line in listed] == ["alice", "bob", "carol"]
    assert listed[2].startswith(f"{key_id}\tcarol\t") and listed[2].endswith("\t*")
    rows = json.loads(tailor(server.home, "keys", "list", "--json").stdout)
    assert [(row["principal"], row["usedByCli"]) for row in rows] == [("alice", False), ("bob", False),
                                                                       ("carol", True)]
    assert all(secret not in json.dumps(row) for row in rows)

    # Variables in the environment win over the saved key.
    alice_id, alice_secret = server.keys["alice"]
    done = tailor(server.home, "jobs", "list", endpoint=server.endpoint, AWS_ACCESS_KEY_ID=alice_id,
                  AWS_SECRET_ACCESS_KEY=alice_secret)
    assert (done.returncode, done.stdout) == (0, "")


def test_a_revoked_key_is_refused_by_the_server(server):
    key_id, secret = created_key(tailor(server.home, "keys", "create", "--principal", "dave", "--no-save"))
    assert not (server.home / "cli-credentials.json").exists()
    server.keys["dave"] = (key_id, secret)
    bedrock = server.client(principal="dave")
    bearer = urllib.request.Request(server.endpoint + "/v1/models",
                                    headers={"Authorization": f"Bearer {key_id}.{secret}"})
    assert bedrock.list_custom_models()["modelSummaries"] == []
    with urllib.request.urlopen(bearer, timeout=30) as response:
        assert response.status == 200

    done = tailor(server.home, "keys", "revoke", key_id)
    assert done.returncode == 0 and f"Revoked {key_id} of principal 'dave'." in done.stderr
    with pytest.raises(ClientError) as refused:
        bedrock.list_custom_models()
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(urllib.error.HTTPError) as refused_bearer:
        urllib.request.urlopen(bearer, timeout=30)
    assert refused_bearer.value.code == 401
    assert key_id not in tailor(server.home, "keys", "list").stdout

    # By principal: every key of erin goes, and the saved one is forgotten with it.
    first, _ = created_key(tailor(server.home, "keys", "create", "--principal", "erin", "--no-save"))
    second, _ = created_key(tailor(server.home, "keys", "create", "--principal", "erin"))
    done = tailor(server.home, "keys", "revoke", "erin")
    assert done.returncode == 0
    assert f"Revoked {first} of principal 'erin'." in done.stderr and f"Revoked {second}" in done.stderr
    assert "It was the key this CLI signed with" in done.stderr
    assert not (server.home / "cli-credentials.json").exists()
    assert [line.split("\t")[1] for line in tailor(server.home, "keys", "list").stdout.splitlines()] == \
        ["alice", "bob"]

    done = tailor(server.home, "keys", "revoke", "nobody")
    assert done.returncode == 2
    assert done.stderr == "error: No access key or principal named 'nobody'; `tailor keys list` shows them.\n"


def test_without_a_key_the_cli_says_which_variables_to_set(tmp_path):
    for command in (["jobs", "list"], ["models", "list"], ["jobs", "events", "some-job"]):
        done = tailor(tmp_path / "home", *command)
        assert done.returncode == 2
        assert done.stderr.startswith("error: No access key for the Tailor server. Run `tailor keys create "
                                      "--principal NAME`"), done.stderr
        assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in done.stderr
        assert "Unable to locate credentials" not in done.stderr


def test_a_server_that_is_not_running_is_one_sentence(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    sentence = f"error: No Tailor server answers at {url}; start one with `tailor serve`.\n"
    variables = {"AWS_ACCESS_KEY_ID": "TKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}
    for command in (["jobs", "list"], ["jobs", "get", "a-job"], ["models", "list"], ["jobs", "events", "a-job"],
                    ["jobs", "events", "a-job", "--follow"]):
        done = tailor(tmp_path / "home", *command, endpoint=url, **variables)
        assert (done.returncode, done.stderr) == (2, sentence), command
    done = tailor(tmp_path / "home", "jobs", "list", "--endpoint", url, **variables)
    assert (done.returncode, done.stderr) == (2, sentence)
