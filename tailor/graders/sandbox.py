"""Running a grader's Python file the way AWS Lambda runs a function, confined by bubblewrap.

A Python grader is a module that defines ``lambda_handler(event, context)``: ``event`` is the batch
(the JSON list of samples of ``tailor.graders.contract``) and the handler returns the list of
results. ``run_python`` starts one fresh sandbox per batch, and in it::

    python -c <bootstrap>   # = python -m tailor.graders.sandbox, with this checkout's tailor importable

The child reads one JSON request on stdin (the file, the batch, the limits, the environment),
imports the file, calls the handler and writes one JSON response on stdout. Whatever the grader
itself prints, ``print`` or C code alike, goes to stderr: the child points file descriptor 1 at
stderr before the grader is imported, so stdout carries the response and nothing else. The
parent hands the child's stderr to an optional ``log`` callback (the grader's "CloudWatch log").

What a grader can reach. Grader code is the operator's, but it must not be able to read the
server's secrets (``server.key``, ``tailor.db``), its environment, the network or other jobs'
files, so every batch runs in a bubblewrap (``bwrap``) sandbox built afresh:

- **user**: uid/gid 65534 (nobody) with no capabilities, no supplementary groups and
  ``no_new_privs``, in a user namespace of its own that may not create further ones
  (``--disable-userns``, bubblewrap 0.8+). When the server runs as root, ``bwrap`` first builds
  the sandbox as root (so it can bind a Python installed under a private folder such as
  ``/root/.pyenv``; a ``bwrap`` started as nobody cannot even resolve such a path), keeping only
  the capabilities ``setpriv`` needs to become nobody on the host too; a second, unprivileged
  ``bwrap`` then enters the user namespace. When the server is not root, one unprivileged
  ``bwrap`` does it all, and the grader is the server's (unprivileged) user on the host.
- **files**: an empty root, read-only, holding only ``/usr``, the ``/bin``/``/lib*`` links, the
  Python installation (``sys.base_prefix``) and virtual environment (``sys.prefix``) and the
  ``tailor`` package, all read-only; a few harmless ``/etc`` files (the loader cache, TLS
  certificates, time zone) and a two-line ``passwd``/``group``; the grader's own file, copied in
  read-only at ``/var/task/NAME`` (modules beside it are not visible); a fresh ``/proc`` and
  minimal ``/dev``. ``$TAILOR_HOME`` is never inside (the probe refuses a layout where it would
  be). The only writable places are ``/tmp`` (``SCRATCH_MB``, also HOME, TMPDIR and the working
  folder) and ``/dev/shm`` (``SHM_MB``), both memory file systems that vanish with the sandbox.
- **environment**: a fixed minimal one (``PATH``, ``HOME``, ``TMPDIR``, ``LANG``, two ``PYTHON*``
  switches, and ``PWD`` from bwrap) plus the Lambda variables and the grader's registered
  ``--env``; nothing of the server's. The last two travel on stdin and are set by the child, so
  they are on no command line other users could read, and never reach ``bwrap`` (which runs as
  root when the server does: ``LD_PRELOAD`` and the like must not).
- **network**: none — a network namespace with only loopback. One exception: a grader whose
  registered environment names a judge (``TAILOR_JUDGE_URL``) can reach that one host and port,
  through an HTTP proxy in the parent that refuses every other destination
  (``tailor.graders.judge_egress``); inside, ``HTTP_PROXY``/``HTTPS_PROXY`` point at a relay.
- **processes**: a PID namespace. When the grader's process ends, or the parent kills the sandbox
  at the timeout, or the parent itself dies (``--die-with-parent``), the kernel kills every process
  in it, including ones that called ``setsid`` or forked twice.
- **limits**, set by the child on itself before it imports the grader: ``RLIMIT_AS``
  (``memory_mb``; address space, not resident memory, so libraries that reserve much — torch,
  CUDA — need a high cap), ``RLIMIT_CPU`` (``cpu_seconds``, the timeout by default; SIGXCPU, then
  SIGKILL a second later), ``RLIMIT_NPROC`` (``max_processes``; threads count too, per sandbox),
  ``RLIMIT_FSIZE`` (no file larger than the scratch) and no core files. The parent enforces the
  wall clock (``timeout_seconds``): past it the sandbox is killed and every sample of the batch
  scores 0 with an error naming the timeout.

Where the sandbox cannot be had (``bwrap`` missing, user namespaces refused, the Python
installation unreadable to nobody), ``sandbox_problem`` says why and how to fix it, and
``run_python`` refuses: every sample scores 0 with that message; nothing runs unconfined. The
answer is probed once per process and ``bwrap`` path, and cached: a real sandbox reports its uid,
capabilities, user namespace and network interfaces, so a ``bwrap`` that does not confine (or is
not bubblewrap) is refused too.

Failures are grades, never exceptions: if the handler raises on the batch, the child calls it
again sample by sample, so only the samples that fail score 0 (with the exception's type and
message); a grader that will not import, crashes the process, or returns garbage scores the
samples it spoiled 0 with an explanation. ``run_python`` raises only for the caller's own mistakes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor.graders.contract import GradeResult, failed, read_results
from tailor.graders.judge_egress import judge_egress, relay_to_judge

HANDLER = "lambda_handler"
SANDBOX_UID = 65534  # nobody; also the gid (nogroup)
TASK_ROOT = "/var/task"  # where the grader's file is inside the sandbox, as on Lambda
SCRATCH = "/tmp"  # the writable scratch: HOME, TMPDIR and the working folder
SCRATCH_MB = 512  # Lambda's default ephemeral storage
SHM_MB = 64
MAX_PROCESSES = 512  # processes and threads of one sandbox
JUDGE_URL_VARIABLE = "TAILOR_JUDGE_URL"  # the one destination a grader may reach (tailor.graders.judging)
INSTALL_HINT = "install it with `apt-get install bubblewrap` (Debian, Ubuntu; `dnf install bubblewrap` on Fedora)"

_ROOT = str(Path(__file__).absolute().parents[2])  # the folder holding the tailor package
_PACKAGE = os.path.realpath(Path(__file__).parents[1])  # the tailor package itself
# Import this checkout's tailor in the child even when it is not installed, without reordering
# sys.path when it is (then the folder is site-packages, already on the path).
_BOOTSTRAP = (f"import os, sys; root = os.path.realpath({_ROOT!r})\n"
              "if not any(os.path.realpath(entry or '.') == root for entry in sys.path): sys.path.insert(0, root)\n"
              "from tailor.graders.sandbox import main; sys.exit(main())")
_KILL_WAIT_SECONDS = 5.0
RESPONSE_LIMIT = 64 * 2**20  # bytes of results a batch may return (stdout)
LOG_LIMIT = 2**20  # bytes of a batch's log (stderr) kept for the grader's log
_PROBE_SECONDS = 30.0
_LOG_TAIL = 500  # characters of the child's stderr quoted in an error
_FIXED_ENVIRONMENT = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin", "HOME": SCRATCH,
                      "TMPDIR": SCRATCH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
_PASSWD = b"root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/tmp:/usr/sbin/nologin\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"
_ETC = ("/etc/ld.so.cache", "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/localtime")
_RELAY_SOCKET = "/run/tailor/judge.sock"  # the judge proxy's socket, inside the sandbox


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
    cpu_seconds: float | None = None,
    max_processes: int = MAX_PROCESSES,
    bwrap: str | None = None,
) -> list[GradeResult]:
    """Grade ``samples`` with the ``lambda_handler`` of ``file``; one result per sample, in order.

    ``cpu_seconds`` (default: the timeout) and ``max_processes`` bound the sandbox's CPU time and
    process count; ``bwrap`` names the bubblewrap program (default: ``bwrap`` on the PATH)."""
    if not samples:
        return []
    ids = [str(item["id"]) for item in samples]
    sandbox = _sandbox(bwrap)
    if isinstance(sandbox, str):
        return _all_failed(ids, f"{sandbox} No sample of this batch was run.")
    try:
        source = Path(file).read_bytes()
    except OSError as error:
        return _all_failed(ids, f"the grader file cannot be read: {error}")
    environment = dict(environment or {})
    cpu_limit = math.ceil(cpu_seconds if cpu_seconds is not None else timeout_seconds)
    task_file = f"{TASK_ROOT}/{Path(file).name}"
    with contextlib.ExitStack() as stack:
        judge_socket = stack.enter_context(judge_egress(environment.get(JUDGE_URL_VARIABLE)))
        data = {task_file: source, "/etc/passwd": _PASSWD, "/etc/group": _GROUP}
        fds = {path: stack.enter_context(_data_fd(content)) for path, content in data.items()}
        request = json.dumps({
            "file": task_file, "batch": samples, "timeout_seconds": timeout_seconds, "memory_mb": memory_mb,
            "cpu_seconds": cpu_limit, "max_processes": max_processes, "file_bytes": SCRATCH_MB * 1024 * 1024,
            "function_name": function_name, "function_arn": function_arn,
            # What the Lambda runtime sets, for graders that read it; then the grader's own.
            "environment": {"AWS_LAMBDA_FUNCTION_NAME": function_name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb), **environment},
            "judge_socket": _RELAY_SOCKET if judge_socket else None}).encode()
        command = _command(sandbox, fds, judge_socket, _BOOTSTRAP)
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True, env=_FIXED_ENVIRONMENT,
                                       pass_fds=list(fds.values()))
        except OSError as error:
            return _all_failed(ids, f"the grader process could not start: {error}")
        stdout, stderr, ended = _exchange(process, request, timeout_seconds)
    _emit(log, stderr)
    if ended == "timeout":
        return _all_failed(ids, f"the grader ran past its timeout of {timeout_seconds:g} s and was stopped; "
                                "no sample of this batch was scored")
    if ended == "overflow":
        return _all_failed(ids, f"the grader's response was larger than {RESPONSE_LIMIT // 2**20} MB and it was "
                                "stopped (stdout carries only the results; print logs to stderr)")
    response = _parse_response(stdout)
    if process.returncode != 0 or response is None:
        return _all_failed(ids, _crash_reason(process.returncode, stderr, memory_mb, cpu_limit))
    if response.get("fatal"):
        return _all_failed(ids, response["fatal"])
    sample_errors = response.get("sample_errors") or {}
    return [failed(result.id, sample_errors[result.id]) if result.id in sample_errors else result
            for result in read_results(samples, response.get("returned"))]


def sandbox_problem(bwrap: str | None = None) -> str | None:
    """None when Python graders can run confined here; otherwise why not and how to fix it (one or
    more sentences). Probed once per process and program, then cached."""
    sandbox = _sandbox(bwrap)
    return sandbox if isinstance(sandbox, str) else None


# ---------------------------------------------------------------------------------------------
# Building the sandbox


@dataclass(frozen=True)
class _Sandbox:
    """What a probe found works: the programs and whether bubblewrap can forbid user namespaces."""

    bwrap: str
    setpriv: str | None  # set when the server is root: bwrap builds as root, then setpriv drops to nobody
    disable_userns: bool


_PROBED: dict[str, _Sandbox | str] = {}
_PROBE_LOCK = threading.Lock()


def _sandbox(bwrap: str | None) -> _Sandbox | str:
    import shutil  # here and below, not at the top: the child imports this module for every batch

    program = bwrap or shutil.which("bwrap") or "bwrap"
    with _PROBE_LOCK:
        if program not in _PROBED:
            _PROBED[program] = _probe(program)
        return _PROBED[program]


def _probe(program: str) -> _Sandbox | str:
    """Start one real sandbox that only reports how it is confined: the answer for this process."""
    if not (os.path.isfile(program) and os.access(program, os.X_OK)):
        return (f"Python graders run only inside a bubblewrap sandbox, and bubblewrap is not installed here "
                f"({program} not found); {INSTALL_HINT}.")
    import shutil

    setpriv = None
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            return ("Python graders run as an unprivileged user, and setpriv (util-linux) was not found to "
                    "drop root's privileges; install it with `apt-get install util-linux`.")
    exposed = _exposed_home()
    if exposed:
        return exposed
    try:
        usage = subprocess.run([program, "--help"], capture_output=True, timeout=_PROBE_SECONDS,
                               check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"Python graders run only inside a bubblewrap sandbox, and {program} does not run: {error}."
    sandbox = _Sandbox(program, setpriv, b"--disable-userns" in usage)
    with contextlib.ExitStack() as stack:
        fds = {path: stack.enter_context(_data_fd(content))
               for path, content in (("/etc/passwd", _PASSWD), ("/etc/group", _GROUP))}
        try:
            probe = subprocess.run(_command(sandbox, fds, None, _BOOTSTRAP), input=b'{"probe": true}',
                                   capture_output=True, timeout=_PROBE_SECONDS, env=_FIXED_ENVIRONMENT,
                                   pass_fds=list(fds.values()), start_new_session=True, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"The bubblewrap sandbox for Python graders could not start: {error}."
    found = _parse_response(probe.stdout) or {}
    confined = {"uid": SANDBOX_UID, "capabilities": 0, "initial user namespace": False, "networks": ["lo"]}
    if probe.returncode == 0 and found == confined:
        return sandbox
    if probe.returncode == 0:  # something ran, but not confined as it must be
        return (f"The grader sandbox does not confine here: {program} ran the probe with "
                f"{found or probe.stdout[:200]!r}, not {confined}; check that {program} is bubblewrap, "
                f"or {INSTALL_HINT}.")
    said = probe.stderr.decode(errors="replace").strip()[-_LOG_TAIL:] or f"exit status {probe.returncode}"
    hint = ("user namespaces may be disabled or restricted (sysctl user.max_user_namespaces, "
            "kernel.unprivileged_userns_clone; on Ubuntu 24.04 AppArmor's "
            "kernel.apparmor_restrict_unprivileged_userns), or a container forbids them")
    if setpriv and "Permission denied" in said:
        hint = (f"the Python installation ({sys.base_prefix}, {sys.prefix}) and the tailor package must be "
                f"readable by uid {SANDBOX_UID} (chmod -R o+rX), or {hint}")
    return f"The bubblewrap sandbox for Python graders does not work here ({said}); {hint}."


def _exposed_home() -> str | None:
    """A refusal when $TAILOR_HOME lies inside something the sandbox binds (it would be readable)."""
    from tailor.settings import default_home  # here, not at the top: the child stays light

    home = os.path.realpath(default_home())
    for source, _ in _binds():
        if _inside(home, source):
            return (f"TAILOR_HOME ({home}) lies inside {source}, which the grader sandbox shows to graders; "
                    "move TAILOR_HOME out of the Python installation and the tailor package.")
    return None


@functools.lru_cache(maxsize=1)
def _binds() -> tuple[tuple[str, str], ...]:
    """(host path, sandbox path) of everything bound read-only: /usr, the Python installation, the
    virtual environment, the tailor package and a few /etc files, each once."""
    wanted = ["/usr", sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix,
              os.path.dirname(sys.executable), _PACKAGE]
    binds: list[tuple[str, str]] = []
    for path in wanted:
        real = os.path.realpath(path)
        for target in dict.fromkeys([real, os.path.abspath(path)]):  # where it is, and where it is named
            if os.path.isdir(real) and not any(_inside(target, dest) for _, dest in binds):
                binds.append((real, target))
    binds += [(path, path) for path in _ETC if os.path.exists(path)]
    return tuple(binds)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


@functools.lru_cache(maxsize=1)
def _layout() -> tuple[str, ...]:
    """The bwrap arguments for the file system that every sandbox shares (computed once)."""
    args = ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(SHM_MB * 1024 * 1024),
            "--tmpfs", "/dev/shm", "--perms", "1777", "--size", str(SCRATCH_MB * 1024 * 1024), "--tmpfs", SCRATCH]
    for link in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(link):  # merged /usr: the same links as the host
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    binds = _binds()
    destinations = [dest for _, dest in binds] + [TASK_ROOT + "/x", "/etc/passwd", _RELAY_SOCKET]
    # bwrap would create missing parent folders as 0700 root, which nobody cannot enter.
    for folder in sorted({parent for dest in destinations for parent in _parents(dest)}):
        if folder not in (SCRATCH, "/dev", "/proc") and not any(_inside(folder, bound) for _, bound in binds):
            args += ["--perms", "0755", "--dir", folder]
    for source, dest in binds:
        args += ["--ro-bind", source, dest]
    return tuple(args)


def _parents(path: str) -> list[str]:
    parents = []
    folder = os.path.dirname(path)
    while folder not in ("/", ""):
        parents.append(folder)
        folder = os.path.dirname(folder)
    return parents


def _command(sandbox: _Sandbox, fds: dict[str, int], judge_socket: str | None, code: str) -> list[str]:
    """The command line of one sandbox that runs ``python -c code`` (see the module docstring)."""
    unshare = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    confine = ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    if sandbox.disable_userns:
        confine.append("--disable-userns")
    command = [sandbox.bwrap, "--die-with-parent", "--new-session", *unshare, "--hostname", "grader"]
    if sandbox.setpriv:
        # Root builds the sandbox (it can bind folders nobody could reach) keeping only what setpriv
        # needs to become nobody; nobody's own bwrap then enters a user namespace of its own.
        command += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                    "--cap-add", "CAP_SETPCAP"]
    else:
        command += confine
    command += _layout()
    for path, fd in fds.items():
        command += ["--perms", "0444", "--ro-bind-data", str(fd), path]
    if judge_socket:
        command += ["--ro-bind", judge_socket, _RELAY_SOCKET]  # connecting needs no write access
    command += ["--remount-ro", "/", "--chdir", SCRATCH, "--"]
    if sandbox.setpriv:
        command += [sandbox.setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
                    sandbox.bwrap, "--die-with-parent", *confine, "--dev-bind", "/", "/", "--chdir", SCRATCH, "--"]
    return [*command, sys.executable, "-c", code]


@contextlib.contextmanager
def _data_fd(content: bytes) -> Iterator[int]:
    """A file descriptor bwrap copies ``content`` from (no host path it would have to reach)."""
    fd = os.memfd_create("tailor-grader")
    try:
        os.write(fd, content)
        os.lseek(fd, 0, os.SEEK_SET)
        yield fd
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# The parent's reading of the outcome


def _exchange(process: subprocess.Popen, request: bytes, timeout_seconds: float) -> tuple[bytes, bytes, str]:
    """Send the request, collect the response and the log: ``(stdout, stderr, how it ended)``,
    ``ended`` being ``exited``, ``timeout`` or ``overflow``.

    Unlike ``communicate`` this holds at most ``RESPONSE_LIMIT`` bytes of stdout (more stops the
    sandbox) and ``LOG_LIMIT`` of stderr (the rest is read and dropped, so a chatty grader neither
    blocks nor fills the training process's memory).
    """
    out, err = bytearray(), bytearray()
    overflow = threading.Event()

    def send() -> None:
        with contextlib.suppress(OSError):  # a grader that exits without reading its input
            process.stdin.write(request)
            process.stdin.close()

    def read(stream, into: bytearray, limit: int, stop: bool) -> None:
        while chunk := stream.read1(1 << 16):
            if len(into) + len(chunk) > limit:
                into.extend(chunk[:max(0, limit - len(into))])
                if stop:
                    overflow.set()
                    _kill(process)
                continue
            into.extend(chunk)

    threads = [threading.Thread(target=send, daemon=True),
               threading.Thread(target=read, args=(process.stdout, out, RESPONSE_LIMIT, True), daemon=True),
               threading.Thread(target=read, args=(process.stderr, err, LOG_LIMIT, False), daemon=True)]
    for thread in threads:
        thread.start()
    ended = "exited"
    try:
        process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        _kill(process)
        ended = "timeout"
        with contextlib.suppress(subprocess.TimeoutExpired):  # the kernel ends the whole sandbox at once
            process.wait(timeout=_KILL_WAIT_SECONDS)
    for thread in threads:
        thread.join(timeout=_KILL_WAIT_SECONDS)
    return bytes(out), bytes(err), "overflow" if overflow.is_set() else ended


def _kill(process: subprocess.Popen) -> None:
    try:
        # bwrap leads its own session; killing it makes the kernel end the sandbox's PID namespace.
        os.killpg(process.pid, signal.SIGKILL)
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


def _crash_reason(returncode: int, stderr: bytes, memory_mb: int, cpu_seconds: int) -> str:
    tail = stderr.decode(errors="replace").strip()[-_LOG_TAIL:]
    # bwrap exits with 128 + N when the grader's process was killed by signal N.
    number = -returncode if returncode < 0 else returncode - 128 if 128 < returncode < 160 else 0
    if number == signal.SIGXCPU:
        reason = f"the grader process was killed by SIGXCPU: it used more than its CPU time limit of {cpu_seconds} s"
    elif number:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        reason = (f"the grader process was killed by {name} (a crash, more than its memory limit of "
                  f"{memory_mb} MB, or past its CPU time limit of {cpu_seconds} s)")
    elif "MemoryError" in tail:
        reason = f"the grader process ran out of memory (its limit is {memory_mb} MB)"
    else:
        reason = f"the grader process exited with code {returncode} without a result"
    return f"{reason}: {tail}" if tail else reason


def _all_failed(ids: list[str], reason: str) -> list[GradeResult]:
    return [failed(sample_id, reason) for sample_id in ids]


# ---------------------------------------------------------------------------------------------
# The child (inside the sandbox)


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
    if request.get("probe"):  # the parent checks that the sandbox confines (see _probe)
        import socket

        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        response: dict = {"uid": os.getuid(), "capabilities": int(status["CapEff"], 16),
                          "initial user namespace": Path("/proc/self/uid_map").read_text().split() == [
                              "0", "0", "4294967295"],
                          "networks": [name for _, name in socket.if_nameindex()]}
    else:
        os.environ.update(request.get("environment") or {})
        _set_limits(request)
        if request.get("judge_socket"):
            relay_to_judge(request["judge_socket"])
        memory_mb = int(request["memory_mb"])
        response = _handle(request, LambdaContext(request["function_name"], request["function_arn"], memory_mb,
                                                  started + float(request["timeout_seconds"])))
    try:
        text = json.dumps(response, default=_jsonable)
    except (TypeError, ValueError) as error:
        text = json.dumps({"fatal": f"the grader's result cannot be written as JSON: {error}"})
    result_stream.write(text)
    result_stream.flush()
    return 0


def _set_limits(request: dict) -> None:
    """Memory, CPU time, processes and file size, before the grader is imported (it cannot raise
    them again: soft and hard limits are set together)."""
    try:
        import resource
    except ImportError:  # not a Unix: the sandbox never starts there anyway
        return
    cpu = int(request["cpu_seconds"])
    limits = [(resource.RLIMIT_AS, int(request["memory_mb"]) * 1024 * 1024, None),
              (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU first, a second later SIGKILL
              (resource.RLIMIT_NPROC, int(request["max_processes"]), None),
              (resource.RLIMIT_FSIZE, int(request["file_bytes"]), None),
              (resource.RLIMIT_CORE, 0, None)]
    for kind, soft, hard in limits:
        hard = soft if hard is None else hard
        try:
            _, current = resource.getrlimit(kind)
            if current != resource.RLIM_INFINITY:
                soft, hard = min(soft, current), min(hard, current)
            resource.setrlimit(kind, (soft, hard))
        except (ValueError, OSError) as error:
            print(f"tailor sandbox: limit {kind} not set ({error})", file=sys.stderr)


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
        sys.path.insert(0, folder)  # the grader's folder first, as in a Lambda package
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
