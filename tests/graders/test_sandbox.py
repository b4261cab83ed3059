"""Python graders run in a real child process: results, per-sample failures, timeout, memory, garbage."""

from __future__ import annotations

import time
from pathlib import Path

from tailor.graders.contract import sample
from tailor.graders.sandbox import run_python
from tailor.graders.template_files import template_path
from tests.graders.conftest import math_record


def grader(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "grader.py"
    path.write_text(source)
    return path


def batch(*completions: str) -> list[dict]:
    return [sample(math_record("6 x 7?", "42"), completion, f"s{i}") for i, completion in enumerate(completions)]


def run(path: Path, samples: list[dict], *, timeout: float = 10, memory_mb: int = 512, log=None):
    return run_python(path, samples, timeout_seconds=timeout, memory_mb=memory_mb, function_name="g",
                      function_arn="arn:aws:lambda:us-east-1:000000000000:function:g", log=log)


def test_the_math_template_rewards_right_answers_and_not_wrong_ones():
    samples = [sample(math_record("6 x 7?", "42"), "6 x 7 = 42, so the answer is \\boxed{42}.", "right"),
               sample(math_record("6 x 7?", "42"), "I think it is 41.", "wrong"),
               sample(math_record("Total?", "#### 1,234"), "Adding up gives 1234.", "gsm8k"),
               sample(math_record("Half?", {"answer": "1/2"}), "Answer: 0.5", "fraction")]
    results = run(template_path("math_ground_truth"), samples)
    assert [(result.id, result.reward, result.error) for result in results] == [
        ("right", 1.0, None), ("wrong", 0.0, None), ("gsm8k", 1.0, None), ("fraction", 1.0, None)]
    assert results[0].metrics == {"correct": 1.0, "has_answer": 1.0, "boxed": 1.0}
    assert results[1].metrics == {"correct": 0.0, "has_answer": 1.0, "boxed": 0.0}


def test_a_sample_that_raises_scores_0_and_the_others_are_still_scored(tmp_path):
    path = grader(tmp_path, """
def lambda_handler(event, context):
    results = []
    for item in event:
        if "boom" in item["messages"][-1]["content"]:
            raise KeyError("no such thing")
        results.append({"id": item["id"], "aggregate_reward_score": 0.75})
    return results
""")
    results = run(path, batch("fine", "boom", "also fine"))
    assert [result.reward for result in results] == [0.75, 0.0, 0.75]
    assert results[1].error == "lambda_handler raised KeyError: 'no such thing'"
    assert results[0].error is None and results[2].error is None


def test_a_grader_past_its_timeout_is_stopped_and_the_batch_scores_0(tmp_path):
    path = grader(tmp_path, "import time\ndef lambda_handler(event, context):\n    time.sleep(60)\n")
    started = time.monotonic()
    results = run(path, batch("a", "b"), timeout=1)
    assert time.monotonic() - started < 3
    assert [result.reward for result in results] == [0.0, 0.0]
    assert all("timeout of 1 s" in result.error for result in results)


def test_a_grader_over_its_memory_limit_scores_0_with_the_limit_named(tmp_path):
    path = grader(tmp_path, """
def lambda_handler(event, context):
    hoard = bytearray(1024 * 1024 * 1024)
    return [{"id": item["id"], "aggregate_reward_score": 1.0} for item in event]
""")
    results = run(path, batch("a", "b"), memory_mb=256)
    assert [result.reward for result in results] == [0.0, 0.0]
    assert all("MemoryError" in result.error and "256 MB" in result.error for result in results)


def test_a_grader_that_kills_its_process_scores_0(tmp_path):
    path = grader(tmp_path, "import os, signal\ndef lambda_handler(event, context):\n"
                            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    results = run(path, batch("a"))
    assert results[0].reward == 0.0 and "killed by SIGKILL" in results[0].error


def test_garbage_is_explained(tmp_path):
    path = grader(tmp_path, "def lambda_handler(event, context):\n    return {'score': 1}\n")
    results = run(path, batch("a", "b"))
    assert [result.reward for result in results] == [0.0, 0.0]
    assert all("returned {'score': 1}, not a list of results" in result.error for result in results)
    unserializable = grader(tmp_path, "def lambda_handler(event, context):\n    return "
                                      "[{'id': e['id'], 'aggregate_reward_score': object()} for e in event]\n")
    results = run(unserializable, batch("a"))
    assert results[0].reward == 0.0 and "<object object at" in results[0].error


def test_a_grader_that_does_not_load_scores_0_and_says_why(tmp_path):
    path = grader(tmp_path, "import no_such_module_here\ndef lambda_handler(event, context):\n    return []\n")
    results = run(path, batch("a"))
    assert results[0].reward == 0.0
    assert "could not be loaded: ModuleNotFoundError: No module named 'no_such_module_here'" in results[0].error


def test_prints_go_to_the_log_and_the_context_is_lambdas(tmp_path):
    path = grader(tmp_path, """
import os, sys
print("loading")  # stdout must not spoil the result
def lambda_handler(event, context):
    os.write(1, b"raw write to fd 1\\n")
    print(context.function_name, context.invoked_function_arn, context.memory_limit_in_mb,
          context.get_remaining_time_in_millis() > 0, os.environ["AWS_LAMBDA_FUNCTION_NAME"])
    return [{"id": item["id"], "aggregate_reward_score": 1} for item in event]
""")
    logs: list[str] = []
    results = run(path, batch("a"), log=logs.append)
    assert results[0].reward == 1.0 and results[0].error is None
    assert logs and "loading" in logs[0] and "raw write to fd 1" in logs[0]
    assert "g arn:aws:lambda:us-east-1:000000000000:function:g 512 True g" in logs[0]


def test_an_empty_batch_starts_nothing(tmp_path):
    assert run(tmp_path / "missing.py", []) == []


def test_a_flood_of_log_output_is_cut_and_the_batch_still_scored(tmp_path):
    from tailor.graders.sandbox import LOG_LIMIT

    path = grader(tmp_path, """
import sys
def lambda_handler(event, context):
    block = "x" * (1 << 20)
    for _ in range(100):  # 100 MB of log: the trainer keeps a bounded part of it
        sys.stderr.write(block)
    return [{"id": item["id"], "aggregate_reward_score": 1.0} for item in event]
""")
    logs: list[str] = []
    results = run(path, batch("a", "b"), log=logs.append)
    assert [result.reward for result in results] == [1.0, 1.0]
    assert logs and LOG_LIMIT // 2 < len(logs[0]) <= LOG_LIMIT
