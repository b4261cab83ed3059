"""Registered graders in a real SQLite store: create, look up by name or ARN, list, delete, grade."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest

from tailor.errors import Conflict, InvalidInput, NotFound
from tailor.graders.contract import sample
from tailor.graders.registry import (
    LAMBDA_ARN,
    check_source,
    create_grader,
    delete_grader,
    get_grader,
    grade,
    list_graders,
)
from tailor.graders.template_files import template_path
from tailor.settings import Settings
from tests.graders.conftest import math_record

MATH = template_path("math_ground_truth")


def test_the_arn_is_lambdas_and_matches_botocores_pattern(store, settings):
    info = create_grader(store, settings, "math.v1_final-2", file=MATH)
    assert info.arn == "arn:aws:lambda:us-east-1:000000000000:function:math.v1_final-2"
    pattern = botocore.session.get_session().get_service_model("bedrock").shape_for("LambdaArn").metadata["pattern"]
    assert re.fullmatch(pattern, info.arn) and re.fullmatch(pattern, info.arn + ":$LATEST")
    assert LAMBDA_ARN.pattern == pattern  # the one botocore validates lambdaArn with
    other = Settings(home=settings.home, region="eu-west-3", account_id="123456789012")
    assert create_grader(store, other, "paris", file=MATH).arn == \
        "arn:aws:lambda:eu-west-3:123456789012:function:paris"


def test_create_get_list_delete(store, settings, tmp_path):
    python = create_grader(store, settings, "math", file=MATH, timeout_seconds=5, memory_mb=256,
                           environment={"MY_SETTING": "1"})
    http = create_grader(store, settings, "remote", url="http://127.0.0.1:9/grade")
    assert (python.kind, python.code, python.timeout_seconds, python.memory_mb, python.environment) == \
        ("python", MATH.read_text(), 5, 256, {"MY_SETTING": "1"})
    assert (http.kind, http.code, http.url, http.timeout_seconds) == ("http", None, "http://127.0.0.1:9/grade", 30)
    assert get_grader(store, "math") == python
    assert get_grader(store, python.arn) == python
    assert get_grader(store, python.arn + ":$LATEST") == python
    assert [info.name for info in list_graders(store)] == ["math", "remote"]
    assert "code" not in json.dumps(python.summary())

    with pytest.raises(Conflict, match="already exists"):
        create_grader(store, settings, "math", url="http://example.com")
    with pytest.raises(NotFound, match="no published versions"):
        get_grader(store, python.arn + ":3")
    with pytest.raises(NotFound, match="Grader not found: arn:aws:lambda:us-east-1:000000000000:function:nope"):
        get_grader(store, "arn:aws:lambda:us-east-1:000000000000:function:nope")
    with pytest.raises(InvalidInput, match="not a Lambda function ARN"):
        get_grader(store, "arn:aws:bedrock:us-east-1:000000000000:custom-model/x")

    grade(python, [sample(math_record("1+1?", "2"), "2", "s")], settings)  # writes the grader's file
    folder = settings.home / "graders" / python.id
    assert (folder / "grader.py").read_text() == python.code
    assert delete_grader(store, settings, python.arn).name == "math"
    assert not folder.exists()
    with pytest.raises(NotFound):
        get_grader(store, "math")
    assert [info.name for info in list_graders(store)] == ["remote"]


@pytest.mark.parametrize("source, message", [
    ("def lambda_handler(event, context)\n    return []\n", "line 1: expected ':'"),
    ("def handler(event, context):\n    return []\n", "defines no top-level function lambda_handler"),
    ("async def lambda_handler(event, context):\n    return []\n", "plain function"),
    ("def lambda_handler(event):\n    return []\n", "must accept two arguments"),
    ("def lambda_handler(event, context, extra):\n    return []\n", "must accept two arguments"),
    ("return 1\ndef lambda_handler(event, context):\n    return []\n", "'return' outside function"),
])
def test_a_file_that_cannot_work_is_refused_without_running_it(store, settings, tmp_path, source, message):
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        create_grader(store, settings, "bad", file=path)
    assert list_graders(store) == []


def test_handlers_defined_other_ways_are_accepted():
    check_source("def lambda_handler(*args):\n    return []\n", "a.py")
    check_source("def lambda_handler(event, context=None, *, verbose=False):\n    return []\n", "b.py")
    check_source("from helpers import handle as lambda_handler\n", "c.py")
    check_source("try:\n    import x\nexcept ImportError:\n    pass\nlambda_handler = print\n", "d.py")
    # Checked, never run: a file that would do harm on import is only parsed.
    check_source("raise SystemExit('ran!')\ndef lambda_handler(event, context):\n    return []\n", "e.py")


@pytest.mark.parametrize("changes, message", [
    ({"name": "has space"}, "Grader name 'has space' is not valid"),
    ({"name": "x" * 65}, "is not valid"),
    ({"file": None}, "either a Python file or a URL"),
    ({"url": "http://example.com"}, "either a Python file or a URL"),
    ({"timeout_seconds": 0}, "timeout_seconds must be a whole number from 1 to 900"),
    ({"timeout_seconds": 901}, "from 1 to 900"),
    ({"memory_mb": 64}, "memory_mb must be a whole number from 128 to 10240"),
    ({"environment": {"1BAD": "x"}}, "Environment variable '1BAD'"),
    ({"file": None, "url": "http://example.com", "environment": {"A": "1"}}, "apply to Python graders only"),
])
def test_invalid_registrations_are_refused(store, settings, changes, message):
    arguments = {"name": "ok", "file": MATH, **changes}
    with pytest.raises(InvalidInput, match=re.escape(message)):
        create_grader(store, settings, arguments.pop("name"), **arguments)
    with pytest.raises(InvalidInput, match="not an http:// or https:// URL"):
        create_grader(store, settings, "web", url="ftp://example.com/grade")
    with pytest.raises(InvalidInput, match="cannot appear in a Lambda ARN"):
        create_grader(store, Settings(home=settings.home, region="local"), "somewhere", file=MATH)


def test_grade_runs_either_kind(store, settings, http_server, tmp_path):
    records = [sample(math_record("6 x 7?", "42"), "\\boxed{42}", "a"), sample(math_record("6 x 7?", "42"), "7", "b")]
    python = create_grader(store, settings, "math", file=MATH)
    assert [result.reward for result in grade(python, records, settings)] == [1.0, 0.0]

    http_server.respond = lambda path, body: (200, json.dumps(
        [{"id": item["id"], "aggregate_reward_score": 0.5} for item in body]).encode())
    http = create_grader(store, settings, "web", url=http_server.url)
    assert [result.reward for result in grade(http, records, settings)] == [0.5, 0.5]

    environment = tmp_path / "env.py"
    environment.write_text("import os\ndef lambda_handler(event, context):\n    return [{'id': e['id'], "
                           "'aggregate_reward_score': float(os.environ['REWARD'])} for e in event]\n")
    configured = create_grader(store, settings, "env", file=environment, environment={"REWARD": "0.25"})
    assert [result.reward for result in grade(configured, records, settings)] == [0.25, 0.25]

    with pytest.raises(ValueError, match="unique"):
        grade(python, [records[0], records[0]], settings)
