"""Running a grader's Python file the way AWS Lambda runs a function, in a process of its own.

A Python grader is a module that defines ``lambda_handler(event, context)``: ``event`` is the batch
(the JSON list of samples of ``tailor.graders.contract``) and the handler returns the list of
results. ``run_python`` starts one child process per batch::

    python -c <bootstrap>   # = python -m tailor.graders.sandbox, with this checkout's tailor importable

The child reads one JSON request on stdin (the file, the batch, the limits), imports the file,
calls the handler and writes one JSON response on stdout. Whatever the grader itself prints,
``print`` or C code alike, goes to stderr: the child points file descriptor 1 at stderr before
the grader is imported, so stdout carries the response and nothing else. The parent hands the
child's stderr to an optional ``log`` callback (the grader's "CloudWatch log").

Limits, like a Lambda function's:

- **wall clock** (``timeout_seconds``): the parent kills the child's whole process group when the
  batch takes longer; every sample of the batch then scores 0 with an error naming the timeout.
- **memory** (``memory_mb``): the child caps its own address space with ``RLIMIT_AS`` (Linux; on
  other systems there is no memory cap) before it imports the grader. The cap is set in the child
  rather than in a ``preexec_fn``, which is unsafe when the parent runs threads (a training job
  does). Over the cap, allocations fail with ``MemoryError``; the error names the limit. It counts
  address space, not resident memory, so libraries that reserve much (torch, CUDA) need a high cap.

Failures are grades, never exceptions: if the handler raises on the batch, the child calls it
again sample by sample, so only the samples that fail score 0 (with the exception's type and
message); a grader that will not import, crashes the process, or returns garbage scores the
samples it spoiled 0 with an explanation. ``run_python`` raises only for the caller's own mistakes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tailor.graders.contract import GradeResult, failed, read_results

HANDLER = "lambda_handler"
_ROOT = str(Path(__file__).absolute().parents[2])  # the folder holding the tailor package
# Import this checkout's tailor in the child even when it is not installed, without reordering
# sys.path when it is (then the folder is site-packages, already on the path).
_BOOTSTRAP = (f"import os, sys; root = os.path.realpath({_ROOT!r})\n"
              "if not any(os.path.realpath(entry or '.') == root for entry in sys.path): sys.path.insert(0, root)\n"
              "from tailor.graders.sandbox import main; sys.exit(main())")
_KILL_WAIT_SECONDS = 5.0
_LOG_TAIL = 500  # characters of the child's stderr quoted in an error


def run_python(
    file: Path,
    samples: list[dict],
    *,
    timeout_seconds: float,
    memory_mb: int,
    function_name: str = "grader",
    function_arn: str = "",
    environment: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[GradeResult]:
    """Grade ``samples`` with the ``lambda_handler`` of ``file``; one result per sample, in order."""
    if not samples:
        return []
    ids = [str(item["id"]) for item in samples]
    request = json.dumps({"file": str(Path(file).resolve()), "batch": samples, "timeout_seconds": timeout_seconds,
                          "memory_mb": memory_mb, "function_name": function_name,
                          "function_arn": function_arn}).encode()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=Path(file).parent, start_new_session=True,
            env=_child_environment(environment, function_name, memory_mb))
    except OSError as error:
        return _all_failed(ids, f"the grader process could not start: {error}")
    try:
        stdout, stderr = process.communicate(request, timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill(process)
        try:
            _, stderr = process.communicate(timeout=_KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:  # a grandchild left its own session and holds the pipes
            stderr = b""
        _emit(log, stderr)
        return _all_failed(ids, f"the grader ran past its timeout of {timeout_seconds:g} s and was stopped; "
                                "no sample of this batch was scored")
    _emit(log, stderr)
    response = _parse_response(stdout)
    if process.returncode != 0 or response is None:
        return _all_failed(ids, _crash_reason(process.returncode, stderr, memory_mb))
    if response.get("fatal"):
        return _all_failed(ids, response["fatal"])
    sample_errors = response.get("sample_errors") or {}
    return [failed(result.id, sample_errors[result.id]) if result.id in sample_errors else result
            for result in read_results(samples, response.get("returned"))]


def _child_environment(extra: dict[str, str] | None, function_name: str, memory_mb: int) -> dict[str, str]:
    environment = dict(os.environ)
    # What the Lambda runtime sets, for graders that read it.
    environment.update(AWS_LAMBDA_FUNCTION_NAME=function_name, AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                       AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(memory_mb), PYTHONUNBUFFERED="1",
                       PYTHONDONTWRITEBYTECODE="1")
    environment.update(extra or {})
    return environment


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the child leads its own session: its children go too
    except OSError:
        process.kill()


def _emit(log: Callable[[str], None] | None, stderr: bytes) -> None:
    text = stderr.decode(errors="replace").rstrip()
    if log and text:
        log(text)


def _parse_response(stdout: bytes) -> dict | None:
    try:
        response = json.loads(stdout)
    except ValueError:
        return None
    return response if isinstance(response, dict) else None


def _crash_reason(returncode: int, stderr: bytes, memory_mb: int) -> str:
    tail = stderr.decode(errors="replace").strip()[-_LOG_TAIL:]
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        reason = (f"the grader process was killed by {name} (a crash, or more than its memory limit of "
                  f"{memory_mb} MB)")
    elif "MemoryError" in tail:
        reason = f"the grader process ran out of memory (its limit is {memory_mb} MB)"
    else:
        reason = f"the grader process exited with code {returncode} without a result"
    return f"{reason}: {tail}" if tail else reason


def _all_failed(ids: list[str], reason: str) -> list[GradeResult]:
    return [failed(sample_id, reason) for sample_id in ids]


# ---------------------------------------------------------------------------------------------
# The child


class LambdaContext:
    """The parts of AWS Lambda's context object that graders use."""

    def __init__(self, function_name: str, function_arn: str, memory_mb: int, deadline: float):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = str(memory_mb)  # a string, as the Lambda runtime gives it
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "tailor"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    """Serve one request: JSON on stdin, JSON on stdout (see the module docstring)."""
    started = time.monotonic()
    result_stream = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # from here on, anything written to stdout (Python or C) lands on stderr
    sys.stdout = sys.stderr
    request = json.load(sys.stdin)
    memory_mb = int(request["memory_mb"])
    _limit_memory(memory_mb)
    response = _handle(request, LambdaContext(request["function_name"], request["function_arn"], memory_mb,
                                              started + float(request["timeout_seconds"])))
    try:
        text = json.dumps(response, default=_jsonable)
    except (TypeError, ValueError) as error:
        text = json.dumps({"fatal": f"the grader's result cannot be written as JSON: {error}"})
    result_stream.write(text)
    result_stream.flush()
    return 0


def _limit_memory(memory_mb: int) -> None:
    try:
        import resource
    except ImportError:  # not a Unix: no memory limit
        return
    limit = memory_mb * 1024 * 1024
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError) as error:  # e.g. macOS refuses RLIMIT_AS
        print(f"tailor sandbox: no memory limit on this system ({error})", file=sys.stderr)


def _handle(request: dict, context: LambdaContext) -> dict:
    memory_mb = int(request["memory_mb"])
    try:
        handler = _load_handler(request["file"])
    except BaseException as error:  # the grader's own code: anything it raises is its failure
        return {"fatal": f"the grader could not be loaded: {_describe(error, memory_mb)}"}
    batch = request["batch"]
    try:
        return {"returned": handler(batch, context)}
    except BaseException as error:
        if len(batch) == 1:
            return {"returned": [], "sample_errors": {str(batch[0]["id"]): _raised(error, memory_mb)}}
        print(f"tailor sandbox: {HANDLER} raised on the batch ({_describe(error, memory_mb)}); "
              "grading sample by sample", file=sys.stderr)
    returned: list[Any] = []
    sample_errors: dict[str, str] = {}
    for item in batch:  # one at a time, so only the samples that fail score 0
        try:
            result = handler([item], context)
        except BaseException as error:
            sample_errors[str(item["id"])] = _raised(error, memory_mb)
            continue
        if isinstance(result, list):
            returned.extend(result)
        else:
            sample_errors[str(item["id"])] = f"the grader returned {type(result).__name__}, not a list of results"
    return {"returned": returned, "sample_errors": sample_errors}


def _load_handler(file: str) -> Callable:
    import importlib.util

    folder = str(Path(file).parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # modules beside the grader import, as in a Lambda package
    spec = importlib.util.spec_from_file_location("lambda_function", file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["lambda_function"] = module
    spec.loader.exec_module(module)
    handler = getattr(module, HANDLER, None)
    if not callable(handler):
        raise AttributeError(f"{Path(file).name} defines no function {HANDLER}(event, context)")
    return handler


def _raised(error: BaseException, memory_mb: int) -> str:
    return f"{HANDLER} raised {_describe(error, memory_mb)}"


def _describe(error: BaseException, memory_mb: int) -> str:
    if isinstance(error, MemoryError):
        return f"MemoryError: the grader ran out of memory (its limit is {memory_mb} MB)"
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _jsonable(value: Any) -> Any:
    """NumPy scalars and arrays become numbers and lists; anything else its repr, which
    ``read_results`` then rejects with a message that shows it."""
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    return repr(value)


if __name__ == "__main__":
    sys.exit(main())
