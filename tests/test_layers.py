"""The API server and the CLI start without the model stack: torch and friends load only in the
processes that train, evaluate or serve models (the engine, job workers, `tailor train`).
`.importlinter` forbids the direct imports; this checks every chain, at run time."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "trl", "accelerate", "datasets")


def test_the_api_and_the_cli_import_without_the_model_stack():
    code = (
        "import pkgutil, importlib, sys, tailor.api.app, tailor.cli, tailor.cli as package\n"
        "for module in pkgutil.iter_modules(package.__path__): importlib.import_module('tailor.cli.' + module.name)\n"
        "import tailor.jobs.spec, tailor.jobs.runner, tailor.services.customization, tailor.services.evaluations\n"
        f"print(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
