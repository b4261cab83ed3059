"""The ``python`` grader: ``grade(sample, item)`` run in the grader sandbox.

The source is wrapped as a Lambda handler (``_WRAPPER``) and run by ``tailor.graders.sandbox``
(bubblewrap, no network, CPU, memory and wall-clock limits), exactly where an operator's Python
graders run; its limits are the ``PYTHON_*`` constants.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tailor.graders.openai.definitions import PythonGrader
from tailor.graders.openai.outcomes import _Context, _failure, _Outcome

PYTHON_MEMORY_MB = 2048  # the sandbox's address-space limit for a python grader
PYTHON_TIMEOUT_SECONDS = 60  # a batch's wall clock (and CPU) limit, plus PYTHON_SECONDS_PER_SAMPLE each
PYTHON_SECONDS_PER_SAMPLE = 2
PYTHON_TIMEOUT_LIMIT = 900  # at most (the registered graders' limit too)


_WRAPPER = '''\
"""Tailor's adapter: OpenAI's grade(sample, item) called the Lambda way (one call per sample)."""
_namespace = {{"__name__": "grader"}}
exec(compile({source!r}, "grader.py", "exec"), _namespace)
_grade = _namespace.get("grade")
if not callable(_grade):
    raise NameError("the source defines no function grade(sample, item)")


def lambda_handler(event, context):
    results = []
    for entry in event:
        value = _grade(entry["sample"], entry["item"])
        if not isinstance(value, (str, bytes)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        results.append({{"id": entry["id"], "aggregate_reward_score": value}})
    return results
'''


def _grade_python(grader: PythonGrader, cases: list[dict], context: _Context) -> list[_Outcome]:
    from tailor.graders.sandbox import run_python

    batch = [{"id": str(i), "sample": case["sample"], "item": case["item"]} for i, case in enumerate(cases)]
    timeout = min(PYTHON_TIMEOUT_LIMIT, PYTHON_TIMEOUT_SECONDS + PYTHON_SECONDS_PER_SAMPLE * len(cases))
    with tempfile.TemporaryDirectory(prefix="tailor-openai-grader-") as folder:
        file = Path(folder) / "grader.py"
        file.write_text(_WRAPPER.format(source=grader.source), encoding="utf-8")
        results = run_python(file, batch, timeout_seconds=timeout, memory_mb=PYTHON_MEMORY_MB,
                             function_name=grader.name[:64] or "grader", log=context.log)
    outcomes = []
    for result in results:
        if result.error is None:
            outcomes.append(_Outcome(result.reward))
            continue
        message = result.error.replace("lambda_handler raised", "grade raised")
        if message.startswith(("grade raised", "the grader could not be loaded", "aggregate_reward_score")):
            outcomes.append(_failure("python_grader_runtime_error", message))
        else:  # the sandbox: not available, past its limits, crashed
            outcomes.append(_failure("python_grader_server_error", message))
    return outcomes
