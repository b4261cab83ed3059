"""Control-plane latency with many stored jobs: p50/p99 of Create, Get and List through boto3.

A real ``tailor serve --no-runner`` (SigV4 on, SQLite) runs in a child process with ``--jobs``
jobs stored for one principal (default 10,000). The script times boto3 calls against it. As a
baseline it also times the same service functions (and the Bedrock converters around them) called
directly in this process, without HTTP, SigV4 or botocore, and prints the ratio: what the API
layer costs. Targets: p99 < 50 ms
for Get and for List(maxResults=100).

    python bench/api_latency.py [--jobs 10000] [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import os
import random
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


def seed_jobs(settings: Settings, count: int) -> list[str]:
    """Insert ``count`` finished jobs directly (fast), as if created over months."""
    store = open_store(settings)
    now = utcnow()
    spec = CustomizationJobSpec(TrainSpec("FINE_TUNING", "tailor.tiny", "s3://bench/train.jsonl", Path("/nonexistent"),
                                          hyperparameters={"epochCount": "2"}), "s3://bench/out").to_record()
    arns = []
    with store.session() as session:
        for i in range(count):
            job_id = f"{i:012d}"
            arn = f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tailor.tiny/{job_id}"
            arns.append(arn)
            session.add(Job(id=job_id, arn=arn, name=f"job-{i}", principal="bench", status="Completed", phase="done",
                            customization_type="FINE_TUNING", base_model_id="tailor.tiny",
                            base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tailor.tiny",
                            output_model_name=f"model-{i}", output_model_arn=None, role_arn=ROLE, spec=spec,
                            status_details={}, progress={}, validation_losses=[0.5], training_loss=0.1,
                            stop_requested=False, work_dir="/nonexistent", created_at=now, last_modified_at=now,
                            end_time=now))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    import boto3
    from botocore.config import Config

    home = Path(tempfile.mkdtemp(prefix="tailor-bench-"))
    settings = Settings(home=home)
    started = time.perf_counter()
    arns = seed_jobs(settings, args.jobs)
    access_key_id, secret = create_key(open_store(settings), settings, "bench")
    print(f"stored {args.jobs:,} jobs in {time.perf_counter() - started:.1f}s; database {home / 'tailor.db'}")
    create_bucket(open_store(settings), settings, "bench", owner="bench")
    (home / "buckets" / "bench" / "train.jsonl").write_text(json.dumps({"prompt": "q", "completion": "a"}) + "\n")

    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen([sys.executable, "-m", "tailor", "serve", "--port", str(port), "--no-runner"],
                              env={**os.environ, "TAILOR_HOME": str(home)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
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
            "Get": (timed(lambda: bedrock.get_model_customization_job(jobIdentifier=rng.choice(arns)), args.calls),
                    timed(lambda: bedrock_jobs.customization_job(customization.get_job(store, "bench", rng.choice(arns))),
                          args.calls)),
            "List(maxResults=100)": (timed(lambda: bedrock.list_model_customization_jobs(maxResults=100), args.calls),
                                     timed(lambda: bedrock_jobs.customization_jobs(
                                         *customization.list_jobs(store, "bench", {"maxResults": 100})), args.calls)),
            "Create": (timed(lambda: bedrock.create_model_customization_job(**create_request()), args.calls),
                       timed(lambda: customization.create_job(
                           store, settings, "bench", bedrock_jobs.customization_request(create_request())), args.calls)),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"\n{args.calls} calls each, {args.jobs:,} stored jobs, SQLite, SigV4 on, one client thread\n")
    print(f"{'operation':22} {'p50 ms':>8} {'p99 ms':>8}   {'direct p50':>10} {'direct p99':>10}   {'API / direct (p50)':>18}")
    for name, (api, direct) in results.items():
        p50, p99 = percentiles(api)
        d50, d99 = percentiles(direct)
        print(f"{name:22} {p50:8.1f} {p99:8.1f}   {d50:10.1f} {d99:10.1f}   {p50 / d50:17.1f}x")
    for name in ("Get", "List(maxResults=100)"):
        p99 = percentiles(results[name][0])[1]
        print(f"{name} p99 {p99:.1f} ms (target < 50 ms: {'met' if p99 < 50 else 'NOT met'})")


if __name__ == "__main__":
    main()
