"""Several servers claiming from one PostgreSQL queue: every queued job is claimed exactly once, and
the servers together never start more than ``max_concurrent_jobs``.

Two processes (as two servers would be) with four threads each loop the runner's own claim,
``Runner(store, settings).claim_next()``, over 300 queued rows on a real PostgreSQL server
(tests/backing/postgres.py). Claiming is all that is raced: nothing is started.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, insert, select

from tailor.store.db import Store, utcnow
from tailor.store.jobs import Job

JOBS = 300

# One "server": THREADS threads claiming until the queue is empty or full. It says "ready" once
# imported and connected, and waits for "go" so that both processes race from the same moment.
CLAIMER = """
import json, sys, threading
from tailor.jobs.runner import Runner
from tailor.settings import Settings
from tailor.store.db import Store

url, limit, home, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
store = Store(url)
settings = Settings(home=home, database_url=url, max_concurrent_jobs=limit)
claimed, errors = [], []

def claim():
    runner = Runner(store, settings)
    try:
        while (got := runner.claim_next()) is not None:
            claimed.append(got[1].id)
    except Exception as error:
        errors.append(repr(error))

print("ready", flush=True)
sys.stdin.readline()
workers = [threading.Thread(target=claim) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(json.dumps({"claimed": claimed, "errors": errors}), flush=True)
"""


def queue_jobs(url: str, count: int) -> set[str]:
    """``count`` queued customization jobs, inserted in one statement (their spec is never read:
    nothing is started). Several share each timestamp, so the claim's order needs its id tiebreak."""
    start = utcnow()
    rows = [dict(id=f"race{i:08d}", arn=f"arn:race/{i}", name=f"race-{i}", principal="alice", status="InProgress",
                 phase="queued", customization_type="FINE_TUNING", base_model_id="tailor.tiny",
                 base_model_arn="arn:fm/tailor.tiny", output_model_name=f"m{i}", role_arn="arn:role", spec={},
                 status_details={}, progress={}, validation_losses=[], stop_requested=False, work_dir="/nonexistent",
                 created_at=start + timedelta(milliseconds=i // 3), last_modified_at=start)
            for i in range(count)]
    store = Store(url)
    with store.session() as session:
        session.execute(insert(Job), rows)
    store.engine.dispose()
    return {row["id"] for row in rows}


def race(url: str, limit: int, home, processes: int = 2, threads: int = 4) -> tuple[list[list[str]], list[str]]:
    """The claims each of ``processes`` processes (``threads`` claimers each) made racing on ``url``,
    and any errors they met."""
    claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, url, str(limit), str(home), str(threads)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]
    try:
        for claimer in claimers:
            assert claimer.stdout.readline().strip() == "ready"
        for claimer in claimers:
            claimer.stdin.write("go\n")
            claimer.stdin.flush()
        results = [json.loads(claimer.communicate(timeout=120)[0]) for claimer in claimers]
    finally:
        for claimer in claimers:
            if claimer.poll() is None:
                claimer.kill()
                claimer.wait()
    return [r["claimed"] for r in results], [e for r in results for e in r["errors"]]


def test_each_queued_job_is_claimed_once_and_the_limit_holds_across_servers(postgres_server, tmp_path):
    # A limit above the queue: every job is claimed, each by exactly one claimer.
    url = postgres_server.new_database("race_all", template="tailor_template")
    queued = queue_jobs(url, JOBS)
    by_process, errors = race(url, limit=10 * JOBS, home=tmp_path)
    assert errors == []
    assert all(by_process), "one process claimed everything: there was no race"
    claimed = [job for claims in by_process for job in claims]
    double_claims = {job: n for job, n in Counter(claimed).items() if n > 1}
    print(f"\n{len(claimed)} claims of {JOBS} queued jobs by 2 processes x 4 threads; double claims: "
          f"{len(double_claims)}")
    assert double_claims == {}
    assert set(claimed) == queued
    store = Store(url)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.phase == "starting")) == JOBS
    store.engine.dispose()

    # A low limit: a claimed job counts as running, so eight claimers together claim exactly 5, the
    # oldest five (claims are FIFO).
    url = postgres_server.new_database("race_limit", template="tailor_template")
    queue_jobs(url, JOBS)
    by_process, errors = race(url, limit=5, home=tmp_path)
    assert errors == []
    assert sorted(job for claims in by_process for job in claims) == [f"race{i:08d}" for i in range(5)]
    for name in ("race_all", "race_limit"):
        postgres_server.drop_database(name)
