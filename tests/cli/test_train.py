"""`tailor train` options: `--dry-run` resolves the model, validates the data and prints the
pre-flight estimate, and trains and writes nothing; `--resume` continues an interrupted run (the
resume itself: tests/train/test_checkpoints.py) or says there is none."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tailor.cli import app


def write_chat(path: Path, records: int) -> Path:
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is {i} + {i}?"},
        {"role": "assistant", "content": f"It is {2 * i}."}]}) + "\n" for i in range(records)))
    return path


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def test_dry_run_prints_the_estimate_and_writes_nothing(home, tmp_path):
    train = write_chat(tmp_path / "train.jsonl", 12)
    out = tmp_path / "run"
    result = invoke("train", "--type", "FINE_TUNING", "--model", "tailor.tiny", "--train", str(train),
                    "--out", str(out), "--hp", "tuningMethod=lora", "--hp", "epochCount=3", "--dry-run")
    assert result.exit_code == 0, result.output
    assert not out.exists()
    for line in ("peak memory", "optimizer (AdamW)", "activations", "lora:", "12 records", "time",
                 "Dry run: nothing was trained."):
        assert line in result.output
    # An empty --out (which a real run accepts) stays empty.
    out.mkdir()
    assert invoke("train", "--type", "FINE_TUNING", "--model", "tailor.tiny", "--train", str(train),
                  "--out", str(out), "--dry-run").exit_code == 0
    assert list(out.iterdir()) == []


def test_dry_run_still_validates_the_data(home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    out = tmp_path / "run"
    result = invoke("train", "--type", "FINE_TUNING", "--model", "tailor.tiny", "--train", str(bad),
                    "--out", str(out), "--dry-run")
    assert result.exit_code != 0
    assert "invalid" in result.output.lower()
    assert "peak memory" not in result.output
    assert not out.exists()


def test_resume_without_an_interrupted_run_says_so(home, tmp_path):
    train = write_chat(tmp_path / "train.jsonl", 12)
    result = invoke("train", "--type", "FINE_TUNING", "--model", "tailor.tiny", "--train", str(train),
                    "--out", str(tmp_path / "run"), "--resume")
    assert result.exit_code == 2
    assert "Nothing to resume" in result.output and "no interrupted run left its scratch folder" in result.output
    assert not (tmp_path / "run").exists()
