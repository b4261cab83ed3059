"""The quickstart (`make demo`) as a user runs it: a child process, offline, end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_demo_converts_validates_trains_with_early_stopping_and_answers(home, tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "tailor", "demo", "--out", str(out)], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "120"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stdout + done.stderr
    assert "Traceback" not in log
    assert "48 records" in log and "16 records" in log  # converted
    assert "OK" in log  # validated
    exact = int(re.search(r"Exact answers after training: (\d+)/48", log).group(1))
    assert exact >= 46, log[-3000:]

    manifest = json.loads((out / "run" / "manifest.json").read_text())
    result = manifest["result"]
    assert result["stopped_early"] and result["best_epoch"] is not None
    assert len(result["validation_losses"]) == result["epochs_run"]
    assert (out / "run" / "validation_artifacts" / "post_fine_tuning_validation" / "validation_metrics.csv").is_file()
    assert str(out / "run" / "model") in log.replace("\n", "")
