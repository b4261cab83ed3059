"""Control-plane latency with many stored jobs: p50/p99 of Create, Get and List through boto3.

A real ``tailor serve --no-runner`` (SigV4 on) runs in a child process with ``--jobs`` jobs stored
for one principal (default 10,000), on SQLite or on PostgreSQL (``--database``; a private
PostgreSQL server is started from Debian's package as the tests start theirs, but with fsync on, or
``--database-url`` names one). The script times boto3 calls against it. As a baseline it also
times the same service functions (and the Bedrock converters around them) called directly in this
process, without HTTP, SigV4 or botocore, and prints the ratio: what the API layer costs. Given
several ``--jobs`` and both databases, it ends with one table, side by side. Targets: p99 < 50 ms
for Get and for List(maxResults=100).

    python bench/api_latency.py [--jobs 10000 100000] [--database sqlite postgresql] [--calls 300]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tailor.api.bedrock import jobs as bedrock_jobs
from tailor.jobs.spec import CustomizationJobSpec
from tailor.services import customization
from tailor.services.buckets import create_bucket
from tailor.services.keys import create_key
from tailor.settings import Settings
from tailor.store.db import open_store, utcnow
from tailor.store.jobs import Job
from tailor.train.spec import TrainSpec

ROLE = "arn:aws:iam::000000000000:role/bench"


REPO = Path(__file__).resolve().parents[1]
BATCH = 10_000  # rows per INSERT ... VALUES statement batch while seeding


def seed_jobs(settings: Settings, count: int) -> list[str]:
    """Insert ``count`` finished jobs directly, in bulk (executemany of a Core INSERT, 10,000 rows a
    batch, not one ORM object at a time), a minute apart as if created over months."""
    from datetime import timedelta

    from sqlalchemy import insert

    store = open_store(settings)
    now = utcnow()
    spec = CustomizationJobSpec(TrainSpec("FINE_TUNING", "tailor.tiny", "s3://bench/train.jsonl", Path("/nonexistent"),
                                          hyperparameters={"epochCount": "2"}), "s3://bench/out").to_record()
    arns, rows = [], []
    for i in range(count):
        job_id = f"{i:012d}"
        arn = f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tailor.tiny/{job_id}"
        arns.append(arn)
        created = now - timedelta(minutes=count - i)
        rows.append(dict(id=job_id, arn=arn, name=f"job-{i}", principal="bench", status="Completed", phase="done",
                         customization_type="FINE_TUNING", base_model_id="tailor.tiny",
                         base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tailor.tiny",
                         output_model_name=f"model-{i}", output_model_arn=None, role_arn=ROLE, spec=spec,
                         status_details={}, progress={}, validation_losses=[0.5], training_loss=0.1, attempts=1,
                         stop_requested=False, work_dir="/nonexistent", created_at=created, last_modified_at=created,
                         end_time=created))
    for start in range(0, count, BATCH):
        with store.session() as session:
            session.execute(insert(Job), rows[start:start + BATCH])
    store.engine.dispose()
    return arns


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def timed(call, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


@contextlib.contextmanager
def postgres_databases(url: str | None):
    """A function giving a fresh database URL per run: on the server at ``url`` (its databases
    named after the run), or on a private PostgreSQL started here, as the tests start theirs."""
    if url:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        def fresh(name: str) -> str:
            admin = create_engine(url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            return make_url(url).set(database=name).render_as_string(hide_password=False)

        yield fresh
        return
    sys.path.insert(0, str(REPO))
    from tests.backing.postgres import postgres_bin, running_postgres

    bin_dir = postgres_bin()
    if bin_dir is None:
        sys.exit("PostgreSQL's server binaries are not installed (`make sandbox` installs them), "
                 "and no --database-url was given")
    with running_postgres(bin_dir, durable=True) as server:  # fsync on, as SQLite syncs each commit
        yield server.new_database


def measure(database: str, url: str | None, jobs: int, calls: int) -> dict[str, tuple[list[float], list[float]]]:
    """Seed ``jobs`` jobs into a fresh home (and ``url``'s database when given), start a server on
    it, and time ``calls`` of each operation through boto3 and directly."""
    import boto3
    from botocore.config import Config

    home = Path(tempfile.mkdtemp(prefix="tailor-bench-"))
    # Creates queue jobs that never run (no runner): lift the per-caller quota on active jobs.
    settings = Settings(home=home, database_url=url, max_active_jobs=10**6)
    started = time.perf_counter()
    arns = seed_jobs(settings, jobs)
    access_key_id, secret = create_key(open_store(settings), settings, "bench")
    print(f"{database}: stored {jobs:,} jobs in {time.perf_counter() - started:.1f}s", flush=True)
    create_bucket(open_store(settings), settings, "bench", owner="bench")
    (home / "buckets" / "bench" / "train.jsonl").write_text(json.dumps({"prompt": "q", "completion": "a"}) + "\n")

    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "TAILOR_HOME": str(home), "TAILOR_MAX_ACTIVE_JOBS": str(10**6),
           **({"TAILOR_DATABASE_URL": url} if url else {})}
    server = subprocess.Popen([sys.executable, "-m", "tailor", "serve", "--port", str(port), "--no-runner"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint + "/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        bedrock = boto3.client("bedrock", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id=access_key_id, aws_secret_access_key=secret,
                               config=Config(retries={"max_attempts": 1}))
        store = open_store(settings)
        rng = random.Random(0)
        counter = iter(range(10**9))

        def create_request() -> dict:
            n = next(counter)
            return dict(jobName=f"new-{n}", customModelName=f"new-model-{n}", roleArn=ROLE,
                        baseModelIdentifier="tailor.tiny", hyperParameters={"epochCount": "1"},
                        trainingDataConfig={"s3Uri": "s3://bench/train.jsonl"}, outputDataConfig={"s3Uri": "s3://bench/out"})

        bedrock.list_model_customization_jobs(maxResults=1)  # warm up the connection
        results = {
            "Get": (timed(lambda: bedrock.get_model_customization_job(jobIdentifier=rng.choice(arns)), calls),
                    timed(lambda: bedrock_jobs.customization_job(customization.get_job(store, "bench", rng.choice(arns))),
                          calls)),
            "List(maxResults=100)": (timed(lambda: bedrock.list_model_customization_jobs(maxResults=100), calls),
                                     timed(lambda: bedrock_jobs.customization_jobs(
                                         *customization.list_jobs(store, "bench", {"maxResults": 100})), calls)),
            "Create": (timed(lambda: bedrock.create_model_customization_job(**create_request()), calls),
                       timed(lambda: customization.create_job(
                           store, settings, "bench", bedrock_jobs.customization_request(create_request())), calls)),
        }
        store.engine.dispose()
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)

    print(f"\n{calls} calls each, {jobs:,} stored jobs, {database}, SigV4 on, one client thread\n")
    print(f"{'operation':22} {'p50 ms':>8} {'p99 ms':>8}   {'direct p50':>10} {'direct p99':>10}   {'API / direct (p50)':>18}")
    for name, (api, direct) in results.items():
        p50, p99 = percentiles(api)
        d50, d99 = percentiles(direct)
        print(f"{name:22} {p50:8.1f} {p99:8.1f}   {d50:10.1f} {d99:10.1f}   {p50 / d50:17.1f}x")
    for name in ("Get", "List(maxResults=100)"):
        p99 = percentiles(results[name][0])[1]
        print(f"{name} p99 {p99:.1f} ms (target < 50 ms: {'met' if p99 < 50 else 'NOT met'})")
    print(flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[10_000])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--database", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite"])
    parser.add_argument("--database-url", help="a PostgreSQL server to use (postgresql+psycopg://...): each run "
                                               "makes a fresh database on it; default: start a private one")
    args = parser.parse_args()

    table: dict[tuple[str, int], dict] = {}
    with contextlib.ExitStack() as stack:
        fresh = stack.enter_context(postgres_databases(args.database_url)) if "postgresql" in args.database else None
        for jobs in args.jobs:
            for database in args.database:
                url = fresh(f"bench_{jobs}") if database == "postgresql" else None
                table[database, jobs] = measure(database, url, jobs, args.calls)

    if len(table) > 1:  # side by side: the API's p50 / p99 in ms
        columns = list(table)
        print("operation (API, ms p50 / p99)  " + "  ".join(f"{db} {jobs:,}".rjust(20) for db, jobs in columns))
        for name in ("Create", "Get", "List(maxResults=100)"):
            cells = ["{:.1f} / {:.1f}".format(*percentiles(table[column][name][0])).rjust(20) for column in columns]
            print(f"{name:30} " + "  ".join(cells))


if __name__ == "__main__":
    main()
