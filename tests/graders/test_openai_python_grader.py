"""OpenAI's python grader, ``grade(sample, item)``, in the real bubblewrap sandbox: results, errors,
and hostile code confined (files, environment, network, memory, time)."""

from __future__ import annotations

import pytest

from tailor.graders.contract import sample
from tailor.graders.openai import grader_info, python_grader, run
from tailor.graders.registry import grade
from tailor.graders.sandbox import sandbox_problem
from tests.graders.conftest import math_record

pytestmark = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no grader sandbox here: {sandbox_problem()}")


def python(source: str) -> dict:
    return {"type": "python", "name": "py", "source": source}


def errors(response: dict) -> dict:
    return {key: value for key, value in response["metadata"]["errors"].items() if value}


def test_grade_reads_the_sample_and_the_item(settings):
    source = ("def grade(sample, item):\n"
              "    answer = (sample['output_json'] or {}).get('answer')\n"
              "    return 1.0 if answer == item['reference']['value'] else 0.25\n")
    right = run(python(source), sample_text='{"answer": 42}', item={"reference": {"value": 42}}, settings=settings)
    assert (right["reward"], errors(right)) == (1.0, {})
    wrong = run(python(source), sample_text="forty-two", item={"reference": {"value": 42}}, settings=settings)
    assert wrong["reward"] == 0.25
    assert right["metadata"]["type"] == "python" and right["metadata"]["name"] == "py"


def test_prints_go_to_the_log_not_into_the_result(settings):
    source = "import sys\ndef grade(sample, item):\n    print('noise'); sys.stdout.write('more')\n    return 0.5\n"
    logged: list[str] = []
    info = grader_info(python(source), settings)
    [result] = grade(info, [sample(math_record("q", "a"), "x", "s")], settings, log=logged.append)
    assert (result.reward, result.error) == (0.5, None)
    assert "noise" in "".join(logged)


def test_a_raising_grade_is_a_runtime_error_of_that_sample_only(settings):
    source = "def grade(sample, item):\n    if 'boom' in sample['output_text']:\n        raise ValueError('no')\n    return 1\n"
    info = grader_info(python(source), settings)
    batch = [sample(math_record("q", "a"), text, f"s{i}") for i, text in enumerate(["fine", "boom", "ok"])]
    results = grade(info, batch, settings)
    assert [result.reward for result in results] == [1.0, 0.0, 1.0]
    assert results[1].error == "grade raised ValueError: no"
    response = run(python(source), sample_text="boom", item={}, settings=settings)
    assert errors(response) == {"python_grader_runtime_error": True,
                                "python_grader_runtime_error_details": "grade raised ValueError: no"}


@pytest.mark.parametrize(("returned", "shown"), [("'0.5'", "'0.5'"), ("None", "None"), ("float('nan')", "nan")])
def test_a_grade_that_is_not_a_finite_number_is_an_error(settings, returned, shown):
    response = run(python(f"def grade(sample, item):\n    return {returned}\n"), sample_text="x", item={},
                   settings=settings)
    assert response["reward"] == 0.0
    assert shown in response["metadata"]["errors"]["python_grader_runtime_error_details"]


def test_a_source_that_fails_on_import_fails_every_sample(settings):
    source = "raise RuntimeError('at import')\ndef grade(sample, item):\n    return 1\n"
    response = run(python(source), sample_text="x", item={}, settings=settings)
    assert response["metadata"]["errors"]["python_grader_runtime_error"] is True
    assert "at import" in response["metadata"]["errors"]["python_grader_runtime_error_details"]


HOSTILE = '''
import os, socket

def grade(sample, item):
    what = sample["output_text"]
    if what == "home":
        return float(os.path.exists(HOME))
    if what == "db":
        open(HOME + "/tailor.db").read()
    if what == "secret":
        return float("TAILOR_SECRET_CANARY" in os.environ)
    if what == "network":
        socket.create_connection(("1.1.1.1", 80), timeout=2)
    if what == "shadow":
        open("/etc/shadow").read()
    if what == "uid":
        return float(os.getuid())
    return 1.0
'''


def test_hostile_code_sees_no_server_files_secrets_or_network(settings, monkeypatch):
    settings.home.mkdir(parents=True, exist_ok=True)
    (settings.home / "tailor.db").write_text("secret rows")
    monkeypatch.setenv("TAILOR_SECRET_CANARY", "server secret")
    source = f"HOME = {str(settings.home)!r}\n" + HOSTILE
    outcome = {what: run(python(source), sample_text=what, item={}, settings=settings)
               for what in ("home", "db", "secret", "network", "shadow", "uid")}
    assert outcome["home"]["reward"] == 0.0 and not errors(outcome["home"])  # the home is not there at all
    assert "FileNotFoundError" in outcome["db"]["metadata"]["errors"]["python_grader_runtime_error_details"]
    assert outcome["secret"]["reward"] == 0.0 and not errors(outcome["secret"])
    assert "OSError" in outcome["network"]["metadata"]["errors"]["python_grader_runtime_error_details"]
    assert outcome["shadow"]["metadata"]["errors"]["python_grader_runtime_error"] is True
    assert outcome["uid"]["reward"] == 65534.0  # nobody


def test_hostile_code_is_held_to_its_memory_limit(settings):
    source = "def grade(sample, item):\n    hog = bytearray(8 * 1024 ** 3)\n    return 1.0\n"
    response = run(python(source), sample_text="x", item={}, settings=settings)
    assert response["reward"] == 0.0
    assert "MemoryError" in response["metadata"]["errors"]["python_grader_runtime_error_details"]


def test_hostile_code_is_stopped_at_its_time_limit(settings, monkeypatch):
    monkeypatch.setattr(python_grader, "PYTHON_TIMEOUT_SECONDS", 2)  # the real limit is a minute
    monkeypatch.setattr(python_grader, "PYTHON_SECONDS_PER_SAMPLE", 0)
    source = "def grade(sample, item):\n    while True:\n        pass\n"
    response = run(python(source), sample_text="x", item={}, settings=settings)
    assert response["reward"] == 0.0
    assert response["metadata"]["errors"]["python_grader_server_error"] is True
    assert response["metadata"]["errors"]["python_grader_server_error_type"] == "timeout"
    assert "timeout of 2 s" in response["metadata"]["errors"]["details"]


def test_a_python_grader_inside_a_multi_grader(settings):
    definition = {"type": "multi", "name": "m", "calculate_output": "(code + exact) / 2",
                  "graders": {"code": python("def grade(sample, item):\n    return len(sample['output_text']) / 10\n"),
                              "exact": {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                                        "reference": "{{item.a}}", "operation": "eq"}}}
    response = run(definition, sample_text="abcde", item={"a": "abcde"}, settings=settings)
    assert response["sub_rewards"] == {"code": 0.5, "exact": 1.0}
    assert response["reward"] == 0.75


def test_a_job_with_a_python_grader_is_refused_where_the_sandbox_cannot_run(settings, monkeypatch, tmp_path):
    from tailor.graders.openai import InvalidGrader

    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on the PATH
    definition = {"type": "multi", "name": "m", "calculate_output": "code",
                  "graders": {"code": python("def grade(sample, item):\n    return 1\n")}}
    with pytest.raises(InvalidGrader) as raised:
        grader_info(definition, settings)
    [(path, problem)] = raised.value.problems
    assert path == "grader.graders.code.source" and "bubblewrap" in problem
