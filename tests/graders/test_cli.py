"""`tailor graders ...`: register, list, test on RFT records, delete, templates; never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor.cli import app


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TAILOR_REGION", raising=False)
    monkeypatch.delenv("TAILOR_ACCOUNT_ID", raising=False)


def run(*args: str):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    return result


def rft_data(path: Path) -> Path:
    question = [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "6 x 7?"}]
    records = [
        {"messages": question, "reference_answer": "42", "task_id": "t1"},          # graded: the reference
        {"messages": [*question, {"role": "assistant", "content": "\\boxed{41}"}],  # graded: its own answer
         "reference_answer": "42"},
        {"messages": question, "reference_answer": 7.5},
        {"messages": question},                                                       # no reference: an error
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records) + "\n")
    return path


def test_register_test_list_and_delete_a_grader(tmp_path):
    copied = run("graders", "templates", "--copy", "math_ground_truth", tmp_path)
    assert copied.exit_code == 0, copied.output
    grader = tmp_path / "math_ground_truth.py"

    created = run("graders", "create", "math", "--file", grader, "--timeout", "10", "--memory-mb", "512")
    assert created.exit_code == 0, created.output
    assert created.stdout.strip() == "arn:aws:lambda:us-east-1:000000000000:function:math"
    assert "Registered python grader math (timeout 10 s, memory 512 MB)." in created.stderr

    tested = run("graders", "test", "math", "--data", rft_data(tmp_path / "train.jsonl"))
    assert tested.exit_code == 0, tested.output
    lines = tested.stdout.splitlines()
    assert lines[0] == "line 1: reward 1.000  correct=1  has_answer=1  boxed=0"
    assert lines[1] == "line 2: reward 0.000  correct=0  has_answer=1  boxed=1"
    assert lines[2].startswith("line 3: reward 1.000")
    assert lines[3] == "line 4: reward 0.000"
    assert lines[4] == "  error: lambda_handler raised ValueError: the record has no reference_answer"
    assert lines[5] == "mean reward 0.500 over 4 samples; 1 error"
    assert "[grader log]" in tested.stderr  # the sandbox's note that it graded sample by sample

    limited = run("graders", "test", "arn:aws:lambda:us-east-1:000000000000:function:math:$LATEST",
                  "--data", tmp_path / "train.jsonl", "--limit", "1")
    assert limited.stdout.splitlines()[-1] == "mean reward 1.000 over 1 sample; 0 errors"

    assert run("graders", "create", "remote", "--url", "http://127.0.0.1:9/grade").exit_code == 0
    listed = run("graders", "list")
    assert listed.stdout.splitlines() == [
        "math\tpython\t10s\t512MB\tarn:aws:lambda:us-east-1:000000000000:function:math",
        "remote\thttp\t30s\t-\tarn:aws:lambda:us-east-1:000000000000:function:remote"]
    assert [item["name"] for item in json.loads(run("graders", "list", "--json").stdout)] == ["math", "remote"]

    deleted = run("graders", "delete", "math")
    assert deleted.exit_code == 0 and "Deleted grader math." in deleted.stderr
    gone = run("graders", "test", "math", "--data", tmp_path / "train.jsonl")
    assert gone.exit_code == 2 and "error: Grader not found: math." in gone.stderr


def test_a_grader_that_fails_every_sample_exits_1(tmp_path):
    grader = tmp_path / "broken.py"
    grader.write_text("def lambda_handler(event, context):\n    return 'nothing useful'\n")
    assert run("graders", "create", "broken", "--file", grader).exit_code == 0
    tested = run("graders", "test", "broken", "--data", rft_data(tmp_path / "train.jsonl"))
    assert tested.exit_code == 1
    assert "error: the grader returned 'nothing useful', not a list of results" in tested.stdout
    assert tested.stdout.splitlines()[-1] == "mean reward 0.000 over 4 samples; 4 errors"


def test_mistakes_are_one_line_messages(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def handler(event, context):\n    return []\n")
    refused = run("graders", "create", "bad", "--file", bad)
    assert refused.exit_code == 2 and "defines no top-level function lambda_handler" in refused.stderr
    assert run("graders", "create", "x", "--file", bad, "--url", "http://a").exit_code == 2
    assert "--env expects NAME=VALUE" in run("graders", "create", "x", "--url", "http://a", "--env", "X").stderr
    good = tmp_path / "good.py"
    good.write_text("def lambda_handler(event, context):\n    return []\n")
    assert run("graders", "create", "good", "--file", good).exit_code == 0
    taken = run("graders", "create", "good", "--file", good)
    assert taken.exit_code == 2 and "A grader named good already exists" in taken.stderr
    data = tmp_path / "bad.jsonl"
    data.write_text('{"messages": []}\nnot json\n{"prompt": "x"}\n')
    unreadable = run("graders", "test", "good", "--data", data)
    assert unreadable.exit_code == 2 and "line 2: not JSON" in unreadable.stderr
    assert 'line 3: expected an object with a "messages" list' in unreadable.stderr


def test_templates_are_listed_with_their_summaries():
    listed = run("graders", "templates")
    assert listed.exit_code == 0
    names = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert names == ["math_ground_truth", "format_constraints", "generic", "judge_instruction_following",
                     "judge_summarization", "judge_reasoning", "judge_rag_faithfulness"]
    assert "Math with ground-truth verification" in listed.stdout
