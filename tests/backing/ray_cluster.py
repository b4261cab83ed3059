"""A real local Ray cluster for the tests: one head and two worker nodes, CPU only.

``ray start --head --num-cpus=0`` holds no CPU, so every job (which asks for one) lands on a
worker node (``--num-cpus=1`` each): two jobs run on two nodes at once, and killing a node kills
what runs on it. Each node is ``ray start --block`` in its own process session, so the teardown
(and ``kill_node``) ends exactly the processes that node started — never ``ray stop``, which would
end every Ray on the machine, other sessions' too. The cluster keeps its sockets and logs in a
short private folder under /tmp (Ray's socket paths are length-limited), uses free ports, and has
usage statistics off and a small object store (it stores nothing here).

Without the ``ray`` extra (``pip install 'tailor[ray]'``) the tests that need it are skipped, and
failed under CI (``CI`` set), where ``make install-dev`` installs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["ray_cluster"]

OBJECT_STORE_BYTES = 100_000_000  # Ray's minimum is 75 MB; the tests store no objects


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray() -> str | None:
    """The ``ray`` command beside this Python (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else shutil.which("ray")


@dataclass
class RayCluster:
    ray: str
    root: Path  # the cluster's temp dir: sessions, sockets, logs
    gcs_address: str  # host:port of the head's GCS, which worker nodes join
    dashboard: str  # http://127.0.0.1:PORT: the Jobs API's address (RAY_ADDRESS)
    env: dict[str, str]
    heads: list[subprocess.Popen] = field(default_factory=list)
    nodes: list[subprocess.Popen] = field(default_factory=list)  # worker nodes, live or killed

    def _start(self, *args: str, log: str) -> subprocess.Popen:
        with open(self.root / log, "ab") as out:
            return subprocess.Popen([self.ray, "start", "--block", "--disable-usage-stats",
                                     f"--object-store-memory={OBJECT_STORE_BYTES}", *args],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=self.env, start_new_session=True)

    def add_nodes(self, count: int = 1, cpus: int = 1) -> list[subprocess.Popen]:
        """Start ``count`` worker nodes of ``cpus`` CPUs each (at once: a node takes seconds to
        start) and wait until the cluster counts them."""
        before = self.alive_ids()
        added = [self._start(f"--address={self.gcs_address}", f"--num-cpus={cpus}", *self._ports(),
                             log=f"node-{len(self.nodes) + i}.out") for i in range(count)]
        self.nodes += added
        self._wait(lambda: len(self.alive_ids() - before) >= count, f"{count} worker node(s) to join")
        return added

    def _ports(self) -> list[str]:
        """Free ports for one node's services: several nodes on one machine would otherwise all
        take the same defaults (the dashboard agent's 52365, ...)."""
        return ["--node-ip-address=127.0.0.1", f"--temp-dir={self.root}"] + [
            f"--{name}={_free_port()}" for name in ("node-manager-port", "object-manager-port", "metrics-export-port",
                                                     "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                     "runtime-env-agent-port")]

    def kill_node(self, node: subprocess.Popen) -> None:
        """SIGKILL every process of a worker node (raylet, its workers, the jobs running there —
        Ray starts a job's entrypoint in a session of its own, so the node's session is not enough),
        as a machine that dies would."""
        import psutil

        try:
            descendants = psutil.Process(node.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        _killpg(node)
        for process in descendants:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass

    def node_of(self, pid: int) -> subprocess.Popen | None:
        """The worker node whose processes include ``pid``."""
        import psutil

        try:
            ancestors = {parent.pid for parent in psutil.Process(pid).parents()}
        except psutil.NoSuchProcess:
            return None
        return next((node for node in self.nodes if node.pid in ancestors), None)

    def alive_ids(self) -> set[str]:
        """The ids of the nodes Ray counts as alive (a node just killed, until it notices)."""
        from ray.util.state import list_nodes

        try:
            return {node.node_id for node in list_nodes(address=self.dashboard) if node.state == "ALIVE"}
        except Exception:  # the dashboard is not up yet
            return set()

    def _wait(self, ready, what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {path.name}\n{path.read_text()[-3000:]}" for path in self.root.glob("*.out"))
                raise RuntimeError(f"Ray cluster: timed out waiting for {what}\n{logs}")
            time.sleep(0.3)

    def close(self) -> None:
        for process in self.nodes:
            self.kill_node(process)
        for process in self.heads:
            _killpg(process)
        shutil.rmtree(self.root, ignore_errors=True)


def _killpg(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the node leads its own session: all its processes
    except ProcessLookupError:
        pass
    process.wait()


def start_cluster(workers: int = 2) -> RayCluster:
    command = _ray()
    try:
        import ray.job_submission  # noqa: F401  (the client the executor uses)
    except ImportError:
        command = None
    if command is None:
        message = "Ray is not installed (pip install 'tailor[ray]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's unix sockets live under it
    gcs_port, dashboard_port = _free_port(), _free_port()
    # A dead node is noticed in about 5 s, not Ray's default 15 s (the resume test kills one). Jobs
    # run `python -m tailor.jobs.worker`: this Python first on PATH, as on nodes that run Tailor's image.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_health_check_period_ms": "1000",
           "RAY_health_check_timeout_ms": "2000", "RAY_health_check_failure_threshold": "4",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "RAY_TMPDIR": str(root)}
    env.pop("RAY_ADDRESS", None)
    cluster = RayCluster(command, root, f"127.0.0.1:{gcs_port}", f"http://127.0.0.1:{dashboard_port}", env)
    try:
        cluster.heads.append(cluster._start(
            "--head", "--num-cpus=0", f"--port={gcs_port}", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard_port}", "--include-dashboard=true",
            f"--ray-client-server-port={_free_port()}", *cluster._ports(), log="head.out"))
        cluster._wait(lambda: len(cluster.alive_ids()) >= 1, "the head node")
        for _ in range(workers):  # one at a time: two raylets starting at once time out on a small machine
            cluster.add_nodes(1)
    except BaseException:
        cluster.close()
        raise
    return cluster


@pytest.fixture(scope="module")  # a module's, not the session's: its ten idle processes cost CPU to every later test
def ray_cluster() -> Iterator[RayCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.close()
