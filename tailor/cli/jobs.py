"""``tailor jobs ...``: customization jobs on a running Tailor server.

``create``, ``get``, ``list``, ``stop`` and ``events`` are clients of the server's API, like any
script (boto3's ``bedrock`` client; the events through the OpenAI-compatible route), so they work
from any machine that reaches the server. ``logs`` reads a job's worker log, which only the
server's machine has.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated

import typer

from tailor.cli.client import (
    EndpointOption,
    api_errors,
    bedrock_client,
    get_json,
    post_json,
)
from tailor.cli.common import (
    EXIT_INVALID,
    DataType,
    load_settings,
    parse_assignments,
    print_json,
    say,
    user_errors,
)

jobs_app = typer.Typer(no_args_is_help=True, help="Customization jobs on a Tailor server.")

ACTIVE = ("InProgress", "Stopping")  # a job in any other status has ended (Bedrock shows a paused one InProgress)
FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what comes until the job ends; "
                                            "exit 1 if it failed.")]
IntervalOption = Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between checks with --follow.")]


@jobs_app.command("create")
def jobs_create(
    name: Annotated[str, typer.Option("--name", help="Job name.")],
    model: Annotated[str, typer.Option("--model", help="Base model: a catalog id, an alias the server's "
                                       "TAILOR_MODEL_ALIASES defines, or your custom model's name or ARN.")],
    train: Annotated[str, typer.Option("--train", help="Training data: s3://BUCKET/KEY in a bucket you own or "
                                       "were granted (put it there with `tailor data upload`). The server reads "
                                       "no local paths or file:// URIs.")],
    output: Annotated[str, typer.Option("--output", help="s3://BUCKET/PREFIX for the metrics files: a bucket you "
                                        "may write, or a new local bucket name, which becomes yours.")],
    custom_model_name: Annotated[str | None, typer.Option("--custom-model-name",
                                                          help="Name of the model it makes (default: NAME-model).")]
    = None,
    customization_type: Annotated[DataType, typer.Option("--type")] = DataType.FINE_TUNING,
    validation: Annotated[list[str] | None, typer.Option("--validation", help="Validation data, s3:// as --train; "
                                                         "repeat for several.")] = None,
    hp: Annotated[list[str] | None, typer.Option("--hp", help="Hyperparameter NAME=VALUE; repeat.")] = None,
    endpoint: EndpointOption = None,
) -> None:
    """Create a customization job; prints its ARN."""
    with api_errors(endpoint):
        request = dict(jobName=name, customModelName=custom_model_name or f"{name}-model",
                       roleArn="arn:aws:iam::000000000000:role/tailor", baseModelIdentifier=model,
                       customizationType=customization_type.value, hyperParameters=parse_assignments(hp, "--hp"),
                       trainingDataConfig={"s3Uri": train}, outputDataConfig={"s3Uri": output})
        if validation:
            request["validationDataConfig"] = {"validators": [{"s3Uri": uri} for uri in validation]}
        typer.echo(bedrock_client(endpoint).create_model_customization_job(**request)["jobArn"])


@jobs_app.command("get")
def jobs_get(job: Annotated[str, typer.Argument(help="Job name or ARN.")], endpoint: EndpointOption = None) -> None:
    """Print a job as JSON."""
    with api_errors(endpoint):
        response = bedrock_client(endpoint).get_model_customization_job(jobIdentifier=job)
    response.pop("ResponseMetadata", None)
    print_json(response)


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option("--status", help="InProgress, Completed, Failed, ...")] = None,
    name_contains: Annotated[str | None, typer.Option("--name-contains")] = None,
    endpoint: EndpointOption = None,
) -> None:
    """List jobs, newest first: name, status, ARN."""
    filters = {k: v for k, v in {"statusEquals": status, "nameContains": name_contains}.items() if v}
    with api_errors(endpoint):
        pages = bedrock_client(endpoint).get_paginator("list_model_customization_jobs").paginate(**filters)
        for page in pages:
            for job in page["modelCustomizationJobSummaries"]:
                typer.echo(f"{job['jobName']}\t{job['status']}\t{job['jobArn']}")


@jobs_app.command("stop")
def jobs_stop(job: Annotated[str, typer.Argument(help="Job name or ARN.")], endpoint: EndpointOption = None) -> None:
    """Ask a job to stop (it becomes Stopping, then Stopped)."""
    with api_errors(endpoint):
        bedrock_client(endpoint).stop_model_customization_job(jobIdentifier=job)
    say(f"Stopping {job}.")


@jobs_app.command("pause")
def jobs_pause(job: Annotated[str, typer.Argument(help="Job name or ARN.")], endpoint: EndpointOption = None) -> None:
    """Pause a fine-tuning or continued pre-training job: it saves a checkpoint at its next step and
    its worker ends (Pausing, then Paused); `tailor jobs resume` continues it from there."""
    with api_errors(endpoint):
        status = post_json(endpoint, f"/v1/fine_tuning/jobs/{job}/pause")["status"]
    say(f"{job} is {status}.")


@jobs_app.command("resume")
def jobs_resume(job: Annotated[str, typer.Argument(help="Job name or ARN.")], endpoint: EndpointOption = None) -> None:
    """Resume a paused job: it is queued again and continues from its checkpoint."""
    with api_errors(endpoint):
        status = post_json(endpoint, f"/v1/fine_tuning/jobs/{job}/resume")["status"]
    say(f"{job} is {status}.")


@jobs_app.command("events")
def jobs_events(
    job: Annotated[str, typer.Argument(help="Job name or ARN.")],
    follow: FollowOption = False,
    interval: IntervalOption = 2.0,
    endpoint: EndpointOption = None,
) -> None:
    """Print a job's events, oldest first: created, each training step's metrics (loss; for RFT the
    rewards), each evaluation on the validation data, and how it ended."""
    shown: set[str] = set()
    status = None
    with api_errors(endpoint):
        client = bedrock_client(endpoint) if follow else None
        while True:
            # The status is read before the events, so the last round shows every event of an ended job.
            if client is not None:
                status = client.get_model_customization_job(jobIdentifier=job)["status"]
            for event in _all_events(endpoint, job):
                if event["id"] not in shown:
                    shown.add(event["id"])
                    typer.echo(_event_line(event))
            if not follow or status not in ACTIVE:
                break
            time.sleep(interval)
    if status == "Failed":
        raise typer.Exit(EXIT_INVALID)


def _all_events(endpoint: str | None, job: str) -> list[dict]:
    """Every event of the job, oldest first (the route pages newest first)."""
    newest_first: list[dict] = []
    after = None
    while True:
        page = get_json(endpoint, f"/v1/fine_tuning/jobs/{job}/events", {"limit": 1000, "after": after})
        newest_first += page["data"]
        if not page["has_more"] or not page["data"]:
            return newest_first[::-1]
        after = page["data"][-1]["id"]


def _event_line(event: dict) -> str:
    when = datetime.fromtimestamp(event["created_at"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    metrics = {name: value for name, value in event.get("data", {}).items() if name not in ("step", "total_steps")}
    shown = "  ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                      for name, value in metrics.items())
    level = "" if event.get("level", "info") == "info" else f"{event['level'].upper()} "
    return f"{when}  {level}{event['message']}" + (f"  {shown}" if shown else "")


@jobs_app.command("logs")
def jobs_logs(
    job: Annotated[str, typer.Argument(help="Job name or ARN.")],
    follow: FollowOption = False,
    interval: IntervalOption = 1.0,
) -> None:
    """Print a job's worker log: its output, progress lines and any traceback. Run it on the server's
    machine (logs stay under its TAILOR_HOME); `tailor jobs events` works from anywhere."""
    from tailor.services.job_lookup import job_log
    from tailor.store.db import open_store

    with user_errors():
        store = open_store(load_settings())
        found = job_log(store, job)
        printed = 0
        while True:
            ended = found.ended  # read before the file, so the last round prints the log's end
            printed = _print_from(found.log_file, printed, everything=ended or not follow)
            if not follow or ended:
                break
            time.sleep(interval)
            found = job_log(store, found.arn)
        if printed == 0 and not follow:
            typer.echo(f"(no log yet: {found.status})")
    if follow and found.status == "Failed":
        raise typer.Exit(EXIT_INVALID)


def _print_from(log_file, offset: int, everything: bool) -> int:
    """Print what the log holds past ``offset`` bytes; returns the new offset. Unless ``everything``
    (the job has ended), only whole lines are printed, so a line being written is not cut in two."""
    try:
        with open(log_file, "rb") as file:
            file.seek(offset)
            chunk = file.read()
    except FileNotFoundError:  # the worker has not started yet
        return offset
    complete = len(chunk) if everything else chunk.rfind(b"\n") + 1
    if complete:
        typer.echo(chunk[:complete].decode("utf-8", errors="replace"), nl=False)
    return offset + complete
