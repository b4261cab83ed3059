"""The ``tailor`` program itself: ``--version``, help for every command, and a start that stays fast."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version

import pytest


def tailor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tailor", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "120"})


def test_version():
    done = tailor("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"tailor {version('tailor')}\n"


def test_importing_the_cli_loads_no_heavy_library():
    # torch alone takes seconds to import: `tailor --help` and the server's clients must not pay for it.
    code = ("import sys, tailor.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'boto3', 'fastapi', 'uvicorn') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("command", [
    [], ["validate"], ["convert", "qa"], ["train"], ["generate"], ["demo"], ["serve"], ["doctor"],
    ["data", "upload"], ["data", "coverage"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"],
    ["buckets", "list"], ["jobs", "create"], ["jobs", "logs"], ["jobs", "events"], ["models", "list"],
    ["eval", "compare"], ["graders", "test"],
])
def test_every_command_has_help(command):
    done = tailor(*command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: tailor" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_help_lists_every_group():
    listed = tailor("--help").stdout
    for name in ("validate", "convert", "train", "generate", "demo", "serve", "doctor", "data", "keys", "buckets",
                 "jobs", "models", "eval", "graders"):
        assert f"│ {name} " in listed, name
