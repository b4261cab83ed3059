"""`tailor validate` and `tailor convert`: output, exit codes, and never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor.cli import app

REPOSITORY = Path(__file__).resolve().parents[2]
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0:200k"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TAILOR_MODEL_ALIASES", json.dumps({HAIKU: "tailor.tiny"}))


def chat(question: str = "What is 2 + 2?") -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "4."}]}


def write(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def validate_args(path: Path, *extra: str) -> list[str]:
    # --estimate-tokens keeps most tests from importing transformers; one test loads the tokenizer.
    return ["validate", str(path), "--type", "FINE_TUNING", "--model", HAIKU, "--estimate-tokens", *extra]


def test_valid_data_exits_0(tmp_path):
    training = write(tmp_path / "train.jsonl", [chat(f"q{i}") for i in range(40)])
    validation = write(tmp_path / "val.jsonl", [chat(f"v{i}") for i in range(32)])
    result = run(*validate_args(training, "--validation", str(validation)))
    assert result.exit_code == 0, result.output
    assert f"{training}: OK, 40 records (training data, messages format)" in result.stdout
    assert "Valid: 2 files checked for anthropic.claude-3-haiku." in result.stdout
    assert f"{HAIKU} is served by tailor.tiny" in result.stderr  # the alias is never silent


def test_invalid_data_exits_1_naming_line_and_field(tmp_path):
    lines = [chat(f"q{i}") for i in range(40)]
    lines[2] = {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}
    lines[5] = "{not json"
    training = write(tmp_path / "train.jsonl", lines)
    result = run(*validate_args(training))
    assert result.exit_code == 1
    assert f"{training}: line 3: messages[1].role: expected 'assistant' after 'user', got 'user'" in result.stdout
    assert f"{training}: line 6: invalid JSON: Expecting property name enclosed in double quotes (column 2)" \
        in result.stdout
    assert "Invalid: 2 problems in 1 file." in result.stdout


def test_validation_file_bounds_exit_1(tmp_path):
    training = write(tmp_path / "train.jsonl", [chat()] * 40)
    validation = write(tmp_path / "val.jsonl", [chat()] * 12)
    result = run(*validate_args(training, "--validation", str(validation)))
    assert result.exit_code == 1
    assert (f"{validation}: file has 12 records; validation data for family anthropic.claude-3-haiku "
            "needs at least 32") in result.stdout


def test_json_output(tmp_path):
    training = write(tmp_path / "train.jsonl", [chat()] * 31)
    result = run(*validate_args(training, "--json"))
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"ok": False, "reports": [{
        "file": str(training), "purpose": "training", "format": "messages", "record_count": 31,
        "ok": False, "problems": [{"line": None, "field": None, "message":
                                   "file has 31 records; training data for family "
                                   "anthropic.claude-3-haiku needs at least 32"}], "notes": []}]}


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "no.such-model"], "error: Unknown model 'no.such-model'."),
    (["--model", "cohere.command-text-v14:7:4k"], "error: cohere.command-text-v14:7:4k is an id of the "
                                                   "original service; Tailor has no weights for it."),
])
def test_model_errors_exit_2(tmp_path, args, message):
    training = write(tmp_path / "train.jsonl", [chat()])
    result = run("validate", str(training), "--type", "FINE_TUNING", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_missing_file_exits_2(tmp_path):
    result = run(*validate_args(tmp_path / "absent.jsonl"))
    assert result.exit_code == 2
    assert f"error: No file at {tmp_path / 'absent.jsonl'}." in result.stderr


def test_unsupported_type_exits_2(tmp_path):
    training = write(tmp_path / "train.jsonl", [{"input": "text"}])
    result = run("validate", str(training), "--type", "CONTINUED_PRE_TRAINING", "--model", HAIKU)
    assert result.exit_code == 2
    assert ("error: Family anthropic.claude-3-haiku does not support CONTINUED_PRE_TRAINING "
            "(supported: FINE_TUNING).") in result.stderr


def test_convert_qa_then_validate(tmp_path):
    source = tmp_path / "qa.json"
    source.write_text(json.dumps([{"question": f"q{i}", "answer": f"a{i}"} for i in range(50)]))
    result = run("convert", "qa", str(source), str(tmp_path / "train.jsonl"), "--system", "Be brief.",
                 "--validation-fraction", "0.2", "--seed", "0", "--validation-out", str(tmp_path / "val.jsonl"))
    assert result.exit_code == 0, result.output
    assert "Using 'question' as the question and 'answer' as the answer" in result.stderr
    assert "Wrote 40 records to" in result.stderr
    result = run(*validate_args(tmp_path / "train.jsonl"))
    assert result.exit_code == 0, result.output


def test_convert_errors_exit_2_and_write_nothing(tmp_path):
    source = write(tmp_path / "qa.jsonl", [{"question": "q"}, {"question": "q", "answer": 1}])
    result = run("convert", "qa", str(source), str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert "error: Nothing written: 2 problems." in result.stderr
    assert f"{source}: line 1 (item 0): key 'answer' is missing (item keys: 'question')" in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
    result = run("convert", "prompt-completion", str(tmp_path / "absent.jsonl"), str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert "error: No file at" in result.stderr


def test_convert_prompt_completion(tmp_path):
    source = write(tmp_path / "pc.jsonl", [{"prompt": "q", "completion": "a"}])
    result = run("convert", "prompt-completion", str(source), str(tmp_path / "out.jsonl"), "--system", "S")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out.jsonl").read_text())["system"] == "S"


def test_python_dash_m_tailor(tmp_path):
    lines = [chat(f"q{i}") for i in range(40)]
    lines[2] = {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}
    training = write(tmp_path / "train.jsonl", lines)
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    completed = subprocess.run([sys.executable, "-m", "tailor", *validate_args(training)],
                               capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120)
    assert completed.returncode == 1, completed.stderr
    assert "line 3: messages[0].role: the first message must be 'user', got 'assistant'" in completed.stdout
    assert "Traceback" not in completed.stdout + completed.stderr
    missing = subprocess.run([sys.executable, "-m", "tailor", *validate_args(tmp_path / "absent.jsonl")],
                             capture_output=True, text=True, env=environment, cwd=tmp_path, timeout=120)
    assert missing.returncode == 2
    assert "error: No file at" in missing.stderr and "Traceback" not in missing.stderr


def test_tokens_are_counted_with_the_models_tokenizer(tmp_path):
    lines = [chat(f"q{i}") for i in range(40)]
    lines[3] = chat("word " * 1_500)  # ~1,500 tokens: over the tiny model's 1,024-token context
    training = write(tmp_path / "train.jsonl", lines)
    result = run("validate", str(training), "--type", "FINE_TUNING", "--model", HAIKU)
    assert result.exit_code == 1, result.output
    assert f"{training}: line 4: record is " in result.stdout
    assert ("tokens with the model's tokenizer; the limit is 1,024 (the tokenizer's model_max_length)"
            in result.stdout)
    estimated = run(*validate_args(training))
    assert estimated.exit_code == 0, estimated.output  # 7,500 characters / 3 is far below 32,000


def test_malformed_settings_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_MODEL_ALIASES", "{not json")
    result = run(*validate_args(write(tmp_path / "train.jsonl", [chat()])))
    assert result.exit_code == 2
    assert result.stderr.startswith('error: Invalid settings: error parsing value for field "model_aliases"')
