"""Loading weights: a hub id that cannot be reached fails fast with a message, not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tailor.catalog import resolve_model
from tailor.errors import ModelUnavailable
from tailor.settings import Settings
from tailor.weights import load_tokenizer


def test_unreachable_hub_id_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    model = resolve_model("tailor-tests/no-such-model", Settings(home=tmp_path))
    with pytest.raises(ModelUnavailable) as error:
        load_tokenizer(model, Settings(home=tmp_path))
    message = error.value.message
    assert "tailor-tests/no-such-model" in message and "--model DIR" in message


def test_cli_reports_unreachable_hub_without_traceback(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TAILOR_HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "tailor", "generate", "--model", "tailor-tests/no-such-model", "hi"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "error: Model tailor-tests/no-such-model is unavailable" in done.stderr
    assert "HF_HUB_OFFLINE" in done.stderr
