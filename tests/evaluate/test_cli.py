"""`tailor data coverage` and the checks `tailor eval compare` makes before loading any model:
exit codes and messages, never a traceback. (A full `eval compare` run is in test_run.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tailor.cli import app


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAILOR_HOME", str(tmp_path / "home"))


def write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_data_coverage_flags_the_seed_002_agents_question(bedrock_faq, tmp_path):
    questions = write(tmp_path / "eval.jsonl", [
        {"prompt": "What are Agents for Amazon Bedrock?"},
        {"prompt": "Which vector databases can Knowledge Bases use?"},
    ])
    result = run("data", "coverage", "--train", str(bedrock_faq), "--eval", str(questions))
    assert result.exit_code == 1  # a question is flagged
    assert "1 of 2 questions are covered by ≤1 training record" in result.output
    report = json.loads(run("data", "coverage", "--train", str(bedrock_faq), "--eval", str(questions),
                            "--json").output)
    agents, vectors = report["questions"]
    assert (agents["under_covered"], agents["covering_records"]) == (True, 1)
    assert not vectors["under_covered"] and report["training_file"] == str(bedrock_faq)

    covered_only = write(tmp_path / "covered.jsonl", [{"prompt": "Which vector databases can Knowledge Bases use?"}])
    assert run("data", "coverage", "--train", str(bedrock_faq), "--eval", str(covered_only)).exit_code == 0


def test_eval_compare_refuses_bad_input_before_loading_a_model(tmp_path):
    bad = write(tmp_path / "eval.jsonl", [{"prompt": "Q?", "referenceResponse": "A."}, {"prompt": ""}])
    out = tmp_path / "out"

    result = run("eval", "compare", "--models", "tailor.tiny", "--data", str(bad), "--out", str(out))
    assert result.exit_code == 2
    assert "line 2: prompt: must not be empty" in result.output

    good = write(tmp_path / "good.jsonl", [{"prompt": "Q?", "referenceResponse": "A."}])
    result = run("eval", "compare", "--models", "tailor.tiny", "--data", str(good), "--out", str(out),
                 "--metrics", "RougeL,Builtin.Correctness,BLEU")
    assert result.exit_code == 2
    assert "Builtin.Correctness is rated by a judge model" in result.output and "BLEU is not a metric" in result.output

    result = run("eval", "compare", "--models", "openai:gpt-4o", "--data", str(good), "--out", str(out))
    assert result.exit_code == 2 and "needs its URL (openai:MODEL@URL)" in result.output
    assert not out.exists()
