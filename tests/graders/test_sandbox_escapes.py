"""Every way out of the grader sandbox that a security review tried fails, and the grader sees how.

Each grader here attempts an escape and raises what it found as JSON, so it comes back as the
sample's error (``lambda_handler raised RuntimeError: {...}``); the test reads it, and checks from
the host side too: the planted secrets, the listening server, the host's files and its process
table. Without a usable bubblewrap, no grader runs at all."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tailor.graders.contract import sample
from tailor.graders.sandbox import MAX_PROCESSES, SANDBOX_UID, _binds, run_python, sandbox_problem
from tests.graders.conftest import math_record

RAISED = "lambda_handler raised RuntimeError: "

# Shared by every grader below: ``tried(fn)`` is "ok: <value>" or "<Exception>: <message>".
PRELUDE = '''
import json, os, socket, subprocess, sys, time, urllib.parse, urllib.request

def tried(fn):
    try:
        return "ok: " + repr(fn())
    except Exception as error:
        return f"{type(error).__name__}: {error}"

def lambda_handler(event, context):
    raise RuntimeError(json.dumps(attempt()))
'''


def escape(tmp_path: Path, attempt: str) -> Path:
    """A grader file whose ``attempt()`` (the source given) returns what happened, as JSON."""
    path = tmp_path / f"escape_{uuid.uuid4().hex[:8]}.py"
    path.write_text(PRELUDE + attempt)
    return path


def run(path: Path, **options) -> list:
    options = {"timeout_seconds": 20, "memory_mb": 512, **options}
    return run_python(path, [sample(math_record("6 x 7?", "42"), "42", "s0")], **options)


def reported(results: list) -> dict:
    """What the grader found, from the error it raised; the sample scored 0."""
    [result] = results
    assert result.reward == 0.0 and result.error.startswith(RAISED), result.error
    return json.loads(result.error[len(RAISED):])


def host_processes(marker: str) -> list[int]:
    """Pids of the live processes on the host whose command line or name contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "cmdline").read_bytes().replace(b"\0", b" ") + (entry / "comm").read_bytes()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):  # it ended meanwhile
            continue
        if marker.encode() in text and state not in ("Z", "X"):  # a zombie or a dead task runs nothing
            found.append(int(entry.name))
    return found


def in_background(function) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(function()))
    thread.start()
    return thread, out


def test_the_servers_files_are_not_there(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "graders" / "g1").mkdir(parents=True)
    secret = f"SECRET-{uuid.uuid4().hex}"
    for name in ("server.key", "tailor.db", "graders/g1/grader.py"):
        (home / name).write_text(secret)
    monkeypatch.setenv("TAILOR_HOME", str(home))  # the server's own home, as in production
    path = escape(tmp_path, f'''
def attempt():
    home = {str(home)!r}
    found = []
    for top, folders, files in os.walk("/"):
        folders[:] = [f for f in folders if os.path.join(top, f) not in ("/proc", "/usr", "/dev", sys.prefix,
                                                                         sys.base_prefix)]
        found += [os.path.join(top, f) for f in files if f in ("server.key", "tailor.db")]
    return {{"read": {{name: tried(lambda: open(os.path.join(home, name)).read())
                     for name in ("server.key", "tailor.db", "graders/g1/grader.py")}},
            "list": tried(lambda: os.listdir(home)),
            "through pid 1": tried(lambda: open("/proc/1/root" + home + "/server.key").read()),
            "default home": tried(lambda: os.listdir(os.path.expanduser("~/.tailor"))),
            "found": found}}
''')
    seen = reported(run(path))
    assert all(outcome.startswith("FileNotFoundError") for outcome in seen["read"].values()), seen
    assert seen["list"].startswith("FileNotFoundError")
    assert seen["through pid 1"].startswith(("FileNotFoundError", "PermissionError"))
    assert seen["default home"].startswith("FileNotFoundError")
    assert seen["found"] == []
    assert secret not in json.dumps(seen)


def test_the_servers_environment_is_not_there(tmp_path, monkeypatch):
    secret = f"SECRET-{uuid.uuid4().hex}"
    monkeypatch.setenv("TAILOR_S3_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    path = escape(tmp_path, f'''
def attempt():
    secret = {secret!r}
    leaks = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if secret.encode() in open(f"/proc/{{pid}}/environ", "rb").read():
                    leaks.append(pid)
            except OSError:
                pass
    return {{"variables": sorted(os.environ), "secret in os.environ": secret in os.environ.values(),
            "processes holding it": leaks, "the grader's own": os.environ.get("GRADER_SETTING")}}
''')
    seen = reported(run(path, environment={"GRADER_SETTING": "mine"}, function_name="g"))
    assert seen["variables"] == sorted([
        "PATH", "HOME", "TMPDIR", "LANG", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PWD",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "GRADER_SETTING"])
    assert seen["the grader's own"] == "mine"
    assert seen["secret in os.environ"] is False and seen["processes holding it"] == []


def test_there_is_no_network_and_a_judge_proxy_reaches_only_the_judge(tmp_path, http_server, closed_port):
    port = int(http_server.url.rsplit(":", 1)[1])
    path = escape(tmp_path, f'''
def attempt():
    def post(url):
        request = urllib.request.Request(url, b"[]", {{"Content-Type": "application/json"}}, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status

    def tunnel(port):  # what an HTTPS client does through the proxy; plain HTTP inside, for the test
        proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
        with socket.create_connection((proxy.hostname, proxy.port), timeout=5) as connection:
            connection.sendall(f"CONNECT 127.0.0.1:{{port}} HTTP/1.1\\r\\n\\r\\n".encode())
            answer = connection.recv(4096).split(b"\\r\\n")[0].decode()
            if " 200 " not in answer:
                return answer
            connection.sendall(b"POST /v1/tunnelled HTTP/1.1\\r\\nHost: judge\\r\\nContent-Length: 2\\r\\n"
                               b"Connection: close\\r\\n\\r\\n[]")
            return connection.recv(4096).split(b"\\r\\n")[0].decode()

    return {{"tcp to the host's server": tried(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=5)),
            "tcp to the internet": tried(lambda: socket.create_connection(("192.0.2.1", 80), timeout=5)),
            "dns": tried(lambda: socket.getaddrinfo("example.com", 443)),
            "http to the host's server": tried(lambda: post("{http_server.url}/steal")),
            "http to the judge": tried(lambda: post(os.environ.get("TAILOR_JUDGE_URL", "http://none") + "/ok")),
            "http elsewhere": tried(lambda: post("http://127.0.0.1:{closed_port}/steal")),
            "tunnel to the judge": tried(lambda: tunnel({port})),
            "tunnel elsewhere": tried(lambda: tunnel({closed_port}))}}
''')
    seen = reported(run(path))
    assert seen["tcp to the host's server"].startswith("ConnectionRefusedError")
    assert "Network is unreachable" in seen["tcp to the internet"]
    assert seen["dns"].startswith("gaierror")
    assert seen["http to the host's server"].startswith("URLError")
    assert http_server.requests == []

    # A grader registered with a judge reaches that host and port (here the same server), through
    # the proxy only, and nothing else.
    seen = reported(run(path, environment={"TAILOR_JUDGE_URL": f"{http_server.url}/v1"}))
    assert seen["http to the judge"] == "ok: 200" and ("/v1/ok", []) in http_server.requests
    assert seen["tcp to the host's server"].startswith("ConnectionRefusedError")  # no way around the proxy
    assert seen["http elsewhere"].startswith("HTTPError: HTTP Error 403")
    assert seen["tunnel to the judge"] == "ok: 'HTTP/1.0 200 OK'" and ("/v1/tunnelled", []) in http_server.requests
    assert seen["tunnel elsewhere"] == "ok: 'HTTP/1.1 403 Refused'"
    assert seen["tcp to the internet"] == "OSError: [Errno 101] Network is unreachable"


def test_writes_stay_in_a_scratch_folder_that_vanishes(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    marker = f"tailor-escape-{uuid.uuid4().hex}"
    package = Path(__file__).resolve().parents[2] / "tailor"
    path = escape(tmp_path, f'''
def attempt():
    def write(target):
        with open(target, "w") as file:
            file.write("escaped")
        return target
    return {{"scratch at start": os.listdir("/tmp"), "cwd": os.getcwd(), "home": os.environ["HOME"],
            "into the server's home": tried(lambda: write({str(home / marker)!r})),
            "into the host's /tmp": tried(lambda: write("/tmp/{marker}")),
            "into /var/tmp": tried(lambda: write("/var/tmp/{marker}")),
            "into the tailor package": tried(lambda: write({str(package / marker)!r})),
            "into its own folder": tried(lambda: write(os.path.dirname(__file__) + "/{marker}")),
            "over /etc/passwd": tried(lambda: write("/etc/passwd")),
            "at the root": tried(lambda: write("/{marker}"))}}
''')
    seen = reported(run(path))
    # Empty, but for the folders leading to read-only code, where the checkout or the Python
    # installation itself lives under /tmp (a CI clone in a temporary folder, say).
    code_under_tmp = sorted({Path(target).parts[2] for _, target in _binds() if target.startswith("/tmp/")})
    assert seen["scratch at start"] == code_under_tmp and seen["cwd"] == seen["home"] == "/tmp"
    assert seen["into the host's /tmp"] == f"ok: '/tmp/{marker}'"  # the scratch, not the host's /tmp
    for target in ("into the server's home", "into /var/tmp", "into the tailor package", "into its own folder",
                   "over /etc/passwd", "at the root"):
        assert seen[target].startswith(("FileNotFoundError", "OSError: [Errno 30] Read-only file system",
                                         "PermissionError")), (target, seen[target])
    assert not (home / marker).exists() and not Path(f"/tmp/{marker}").exists()
    assert not Path(f"/var/tmp/{marker}").exists() and not (package / marker).exists()
    assert not (tmp_path / marker).exists() and Path("/etc/passwd").read_text() != "escaped"
    assert reported(run(path))["scratch at start"] == code_under_tmp  # the next batch starts from an empty scratch


GRANDCHILD = '''
def attempt():
    marker = {marker!r}
    read, write = os.pipe()
    if os.fork() == 0:  # the child leaves the session and forks again, so the grandchild is orphaned
        os.setsid()
        if os.fork() == 0:
            os.write(write, str(os.getpid()).encode())
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", marker])
        os._exit(0)
    grandchild = int(os.read(read, 32))
    while marker not in open(f"/proc/{{grandchild}}/cmdline").read():
        time.sleep(0.01)
    time.sleep({linger})  # time for the test to see it from the host
    return {{"grandchild": grandchild, "session": os.getsid(grandchild) != os.getsid(0)}}
'''


@pytest.mark.parametrize("linger", [1.5, 60])
def test_a_grandchild_that_left_the_session_dies_with_the_sandbox(tmp_path, linger):
    marker = f"tailor-escape-{uuid.uuid4().hex}"
    path = escape(tmp_path, GRANDCHILD.format(marker=marker, linger=linger))
    thread, out = in_background(lambda: run(path, timeout_seconds=5))
    seen_alive = []
    while thread.is_alive():
        seen_alive += host_processes(marker)
        time.sleep(0.05)
    thread.join()
    assert seen_alive, "the grandchild never ran, so this test would prove nothing"
    [results] = out
    if linger < 5:  # it returned, and its grandchild is still running when it does
        assert reported(results)["session"] is True
    else:  # it was stopped at the timeout
        assert "timeout of 5 s" in results[0].error
    assert host_processes(marker) == []


def test_a_fork_bomb_hits_the_process_limit_and_the_machine_survives(tmp_path):
    marker = f"bomb{uuid.uuid4().hex[:10]}"  # a process name: at most 15 characters
    path = escape(tmp_path, f'''
def attempt():
    with open("/proc/self/comm", "w") as comm:  # the host finds the bomb by this name
        comm.write({marker!r})
    forks = 0
    try:
        while True:
            if os.fork() == 0:  # every child bombs on, and holds its place once it cannot
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(60)
            forks += 1
    except OSError as error:
        time.sleep(1)  # the bomb at its largest, for the test to count from the host
        return {{"forks": forks, "stopped by": f"{{type(error).__name__}}: {{error}}"}}
''')
    started = time.monotonic()
    thread, out = in_background(lambda: run(path, timeout_seconds=60))
    largest = 0
    while thread.is_alive():
        largest = max(largest, len(host_processes(marker)))
        time.sleep(0.05)
    thread.join()
    seen = reported(out[0])
    assert seen["stopped by"] == "BlockingIOError: [Errno 11] Resource temporarily unavailable"
    assert MAX_PROCESSES // 2 < largest <= MAX_PROCESSES  # it grew, up to the limit and no further
    assert time.monotonic() - started < 30
    assert host_processes(marker) == []
    assert subprocess.run(["true"], check=False).returncode == 0  # the host can still start processes


def test_cpu_time_past_the_limit_is_stopped(tmp_path):
    path = escape(tmp_path, '''
import signal
def attempt():
    def out_of_cpu(number, frame):
        raise TimeoutError(f"SIGXCPU after {time.process_time():.1f} s of CPU")
    signal.signal(signal.SIGXCPU, out_of_cpu)
    while True:
        pass
''')
    started = time.monotonic()
    results = run_python(path, [sample(math_record("6 x 7?", "42"), "42", "s0")], timeout_seconds=30,
                         memory_mb=512, cpu_seconds=1)
    assert time.monotonic() - started < 15
    assert results[0].reward == 0.0 and results[0].error.startswith("lambda_handler raised TimeoutError: SIGXCPU after")
    used = float(results[0].error.split(" after ")[1].split()[0])
    assert 0.8 <= used < 3  # about the limit (the kernel and Python account CPU time a little apart)

    unaware = escape(tmp_path, "def attempt():\n    while True:\n        pass\n")
    results = run_python(unaware, [sample(math_record("6 x 7?", "42"), "42", "s0")], timeout_seconds=30,
                         memory_mb=512, cpu_seconds=1)
    assert "killed by SIGXCPU: it used more than its CPU time limit of 1 s" in results[0].error


def test_graders_run_as_an_unprivileged_user_inside_and_outside(tmp_path):
    marker = f"uid{uuid.uuid4().hex[:10]}"
    path = escape(tmp_path, f'''
def attempt():
    with open("/proc/self/comm", "w") as comm:
        comm.write({marker!r})
    time.sleep(1.5)  # time for the test to look at this process from the host
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {{"ids": [os.getresuid(), os.getresgid(), os.getgroups()],
            "capabilities": status["CapEff"].strip(), "no new privileges": status["NoNewPrivs"].strip(),
            "uid map": open("/proc/self/uid_map").read().split(),
            "become root": tried(lambda: os.setuid(0)),
            "new user namespace": tried(lambda: subprocess.run(["unshare", "--user", "true"], check=True,
                                                               capture_output=True))}}
''')
    thread, out = in_background(lambda: run(path))
    outside = set()
    while thread.is_alive():
        for pid in host_processes(marker):
            try:
                uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                            if line.startswith("Uid:"))
            except (OSError, StopIteration):
                continue
            outside.update(int(uid) for uid in uids.split()[1:])
        time.sleep(0.05)
    thread.join()
    seen = reported(out[0])
    assert seen["ids"] == [[SANDBOX_UID] * 3, [SANDBOX_UID] * 3, []]
    assert seen["capabilities"] == "0000000000000000" and seen["no new privileges"] == "1"
    # In a user namespace of its own (not the host's identity map); who it is outside, the host says below.
    assert seen["uid map"][0] == str(SANDBOX_UID) and seen["uid map"] != ["0", "0", "4294967295"]
    # uid 0 is not even mapped in the sandbox's user namespace: EINVAL (EPERM without one).
    assert seen["become root"].startswith(("OSError: [Errno 22] Invalid argument", "PermissionError"))
    assert seen["new user namespace"].startswith("CalledProcessError")
    # From the host: real, effective, saved and file-system uid, none of them root.
    assert outside and 0 not in outside
    assert outside == ({SANDBOX_UID} if os.geteuid() == 0 else {os.geteuid()})


def test_without_a_working_bubblewrap_no_grader_runs(tmp_path):
    ran = tmp_path / "ran"
    path = tmp_path / "grader.py"
    path.write_text(f"open({str(ran)!r}, 'w').write('unconfined')\n"
                    "def lambda_handler(event, context):\n    return [{'id': e['id'], 'aggregate_reward_score': 1}"
                    " for e in event]\n")
    missing = str(tmp_path / "no-such-bwrap")
    results = run(path, bwrap=missing)
    assert [result.reward for result in results] == [0.0]
    assert "bubblewrap is not installed here" in results[0].error and "apt-get install bubblewrap" in results[0].error
    assert results[0].error.endswith("No sample of this batch was run.")
    assert sandbox_problem(missing) in results[0].error

    # A program that runs the command without confining it (what follows its last "--", as is) is
    # found out by the probe.
    fake = tmp_path / "fake-bwrap"
    fake.write_text(f"#!{sys.executable}\nimport os, sys\nargs = sys.argv[1:]\n"
                    "command = args[len(args) - args[::-1].index('--'):] if '--' in args else []\n"
                    "os.execv(command[0], command) if command else sys.exit(1)\n")
    fake.chmod(0o755)
    results = run(path, bwrap=str(fake))
    assert results[0].reward == 0.0 and "does not confine here" in results[0].error
    assert not ran.exists()


def test_a_tailor_home_inside_what_the_sandbox_shows_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_HOME", str(Path(sys.prefix) / "tailor-home"))
    twin = tmp_path / "bwrap"  # another name for the real bwrap: a fresh probe, not the cached answer
    twin.symlink_to(shutil.which("bwrap"))
    problem = sandbox_problem(str(twin))
    assert problem and "lies inside" in problem and "move TAILOR_HOME" in problem
