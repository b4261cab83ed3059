"""The ``tailor`` command line: a thin shell over the library that turns errors into messages.

Exit codes, the same for every command: 0 success, 1 the data (or result) is invalid, 2 a usage
or other error (unknown model, missing file, bad option). Domain errors are printed as one clear
message on stderr through ``user_errors``; a person never sees a Python traceback.
Heavy libraries (torch, transformers) are imported inside the commands that need them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tailor.catalog import CustomizationType, ResolvedModel, resolve_model
from tailor.errors import InvalidInput, TailorError
from tailor.settings import Settings, get_settings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

EXIT_INVALID = 1
EXIT_ERROR = 2

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
convert_app = typer.Typer(no_args_is_help=True, help="Convert datasets to messages JSONL.")
app.add_typer(convert_app, name="convert")


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ``TailorError`` (or an OS error such as a read-only folder) into ``error: ...`` on
    stderr and exit code 2. Wrap every command body in it."""
    try:
        yield
    except TailorError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_ERROR) from None


def load_settings() -> Settings:
    """The settings, with a malformed ``TAILOR_*`` variable or settings.toml reported as
    ``InvalidInput`` (so ``user_errors`` prints it) instead of a pydantic traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    try:
        return get_settings()
    except SettingsError as error:
        reason = f" ({error.__cause__})" if error.__cause__ else ""
        raise InvalidInput(f"Invalid settings: {error}{reason}.") from None
    except ValidationError as error:
        details = "; ".join(f"{'.'.join(map(str, detail['loc']))}: {detail['msg']}"
                            for detail in error.errors())
        raise InvalidInput(f"Invalid settings: {details}.") from None


def say(message: str) -> None:
    """Progress notes go to stderr, so stdout stays clean for results (and for --json)."""
    typer.echo(message, err=True)


# ---------------------------------------------------------------------------------------------
# tailor validate


class DataType(StrEnum):
    """The customization types whose data ``tailor.data`` can check today (grows with formats.py)."""

    FINE_TUNING = CustomizationType.FINE_TUNING.value
    CONTINUED_PRE_TRAINING = CustomizationType.CONTINUED_PRE_TRAINING.value
    REINFORCEMENT_FINE_TUNING = CustomizationType.REINFORCEMENT_FINE_TUNING.value


@app.command()
def validate(
    file: Annotated[str, typer.Argument(help="Training data: a path, file:// or s3:// URI.")],
    customization_type: Annotated[
        DataType, typer.Option("--type", help="Customization type the data is for.")
    ],
    model: Annotated[str, typer.Option("--model", help="Base model id, alias, directory or hub id.")],
    validation: Annotated[
        list[str] | None,
        typer.Option("--validation", help="Validation data file; repeat for several."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
    estimate_tokens: Annotated[
        bool,
        typer.Option("--estimate-tokens",
                     help="Estimate tokens as characters / 3 instead of loading the tokenizer."),
    ] = False,
) -> None:
    """Check training (and validation) data against the model family's rules.

    Every problem is named by file, line and field. Exit 0 valid, 1 invalid, 2 error.
    """
    from tailor.data.validate import accepted_formats, validate_dataset

    with user_errors():
        settings = load_settings()
        resolved = resolve_model(model, settings)
        for note in resolved.notes:
            say(note)
        wanted = CustomizationType(customization_type)
        accepted_formats(resolved.family, wanted)  # a wrong type fails before any tokenizer loads
        tokenizer = None if estimate_tokens else _tokenizer_for(resolved, settings)
        reports = validate_dataset(file, validation or [], wanted, resolved,
                                   tokenizer=tokenizer, settings=settings)
    ok = all(report.ok for report in reports)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "reports": [report.to_dict() for report in reports]},
                              indent=2, ensure_ascii=False))
    else:
        for report in reports:
            typer.echo(report.render())
        problems = sum(len(report.problems) for report in reports)
        files = f"{len(reports)} file" + ("" if len(reports) == 1 else "s")
        if ok:
            typer.secho(f"Valid: {files} checked for {resolved.family.name}.", fg="green")
        else:
            typer.secho(f"Invalid: {problems} problem{'' if problems == 1 else 's'} in {files}.",
                        fg="red")
    if not ok:
        raise typer.Exit(EXIT_INVALID)


def _tokenizer_for(resolved: ResolvedModel, settings: Settings) -> PreTrainedTokenizerBase | None:
    """The model's own tokenizer when it can be loaded from this machine, else None (the token
    check then estimates). Hub ids are left out: loading one may need the network."""
    if resolved.weights.kind not in ("builtin", "local"):
        say(f"Token counts are estimated (characters / 3): {resolved.weights.location} is a hub id.")
        return None
    try:
        from tailor.weights import load_tokenizer
    except ImportError:
        return None
    try:
        return load_tokenizer(resolved, settings)
    except (TailorError, OSError) as error:
        message = error.message if isinstance(error, TailorError) else str(error)
        say(f"Token counts are estimated (characters / 3): the tokenizer did not load: {message}")
        return None


# ---------------------------------------------------------------------------------------------
# tailor convert


SystemOption = Annotated[
    str | None,
    typer.Option("--system", help="System prompt to put in every record."),
]
FractionOption = Annotated[
    float | None,
    typer.Option("--validation-fraction", help="Share of records to hold out, e.g. 0.2."),
]
ValidationOutOption = Annotated[
    Path | None,
    typer.Option("--validation-out", help="Where to write the held-out records."),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the held-out selection.")]


@convert_app.command("qa")
def convert_qa(
    source: Annotated[Path, typer.Argument(help="JSON array or JSON Lines of Q&A objects.")],
    destination: Annotated[Path, typer.Argument(help="Messages JSONL to write.")],
    question_key: Annotated[
        str | None,
        typer.Option("--question-key", help="Key of the question (detected when omitted)."),
    ] = None,
    answer_key: Annotated[
        str | None,
        typer.Option("--answer-key", help="Key of the answer (detected when omitted)."),
    ] = None,
    system: SystemOption = None,
    validation_fraction: FractionOption = None,
    validation_out: ValidationOutOption = None,
    seed: SeedOption = 0,
) -> None:
    """Convert question/answer pairs to single-turn messages records."""
    from tailor.data.convert import convert_qa_file

    with user_errors():
        convert_qa_file(source, destination, question_key=question_key, answer_key=answer_key,
                        system=system, validation_fraction=validation_fraction,
                        validation_destination=validation_out, seed=seed, notify=say)


@convert_app.command("prompt-completion")
def convert_prompt_completion(
    source: Annotated[Path, typer.Argument(help="JSON Lines of {prompt, completion} records.")],
    destination: Annotated[Path, typer.Argument(help="Messages JSONL to write.")],
    system: SystemOption = None,
    validation_fraction: FractionOption = None,
    validation_out: ValidationOutOption = None,
    seed: SeedOption = 0,
) -> None:
    """Convert prompt/completion records to messages records (user = prompt)."""
    from tailor.data.convert import prompt_completion_to_messages_file

    with user_errors():
        prompt_completion_to_messages_file(source, destination, system=system,
                                           validation_fraction=validation_fraction,
                                           validation_destination=validation_out, seed=seed,
                                           notify=say)


# ---------------------------------------------------------------------------------------------
# tailor train / generate


RECIPES = {
    CustomizationType.FINE_TUNING: "tailor.train.sft",
    CustomizationType.CONTINUED_PRE_TRAINING: "tailor.train.cpt",
    CustomizationType.REINFORCEMENT_FINE_TUNING: "tailor.train.rft",
}


def _parse_assignments(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--hp expects name=value, got {pair!r}.")
        values[name.strip()] = value.strip()
    return values


def run_training(customization_type: CustomizationType, model: str, train: str,
                 validation: list[str], hyperparameters: dict[str, str], out: Path, grader: str | None = None):
    """Resolve, validate and train; returns the outcome (shared by ``train`` and ``demo``)."""
    from importlib import import_module

    from tailor.train.common import TrainSpec

    settings = load_settings()
    for note in resolve_model(model, settings).notes:
        say(note)
    spec = TrainSpec(customization_type=customization_type.value, model=model, training_uri=train,
                     output_dir=out, validation_uris=tuple(validation),
                     hyperparameters=hyperparameters, grader=grader)
    return import_module(RECIPES[customization_type]).run(spec, settings)


def _print_outcome(outcome) -> None:
    from tailor.train.common import TRAINING_METRICS, VALIDATION_METRICS

    result = outcome.manifest["result"]
    if "held_out_rewards" in result:  # reinforcement fine-tuning
        say(f"Trained {result['steps']} steps with grader {result['grader']}; held-out greedy reward "
            f"{result['start_held_out_reward']:.3f} -> {result['final_held_out_reward']:.3f}.")
        say(f"Model:    {outcome.model_dir}")
        say(f"Metrics:  {outcome.output_dir / TRAINING_METRICS} (rewards.png beside it)")
        say(f"Manifest: {outcome.output_dir / 'manifest.json'}")
        return
    line = (f"Trained {result['epochs_run']} epochs, {result['steps']} steps, "
            f"{result['tokens_per_second']:.0f} tokens/s; final training loss "
            f"{result['final_training_loss']:.4f}")
    if result["best_validation_loss"] is not None:
        line += f"; best validation loss {result['best_validation_loss']:.4f} (epoch {result['best_epoch']})"
    if result["stopped_early"]:
        line += "; stopped early"
    say(line + ".")
    say(f"Model:    {outcome.model_dir}")
    say(f"Metrics:  {outcome.output_dir / TRAINING_METRICS}")
    if result["best_validation_loss"] is not None:
        say(f"          {outcome.output_dir / VALIDATION_METRICS}")
    say(f"Manifest: {outcome.output_dir / 'manifest.json'}")


@app.command()
def train(
    customization_type: Annotated[DataType, typer.Option("--type", help="What kind of training.")],
    model: Annotated[str, typer.Option("--model", help="Base model id, alias, directory or hub id.")],
    train_file: Annotated[str, typer.Option("--train", help="Training data (path, file:// or s3://).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (must not exist or be empty).")],
    validation: Annotated[
        list[str] | None, typer.Option("--validation", help="Validation data; repeat for several.")
    ] = None,
    hp: Annotated[
        list[str] | None, typer.Option("--hp", help="Hyperparameter name=value; repeat for several.")
    ] = None,
    grader: Annotated[str | None, typer.Option("--grader", help="REINFORCEMENT_FINE_TUNING: a registered "
                                               "grader's name or ARN (tailor graders create).")] = None,
) -> None:
    """Validate the data, then fine-tune, continue pre-training or reinforcement-fine-tune a model into --out."""
    with user_errors():
        outcome = run_training(CustomizationType(customization_type), model, train_file,
                               validation or [], _parse_assignments(hp or []), out, grader)
    _print_outcome(outcome)


@app.command()
def generate(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str, typer.Option("--model", help="A training output folder or a model id.")],
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest answer in tokens.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 is greedy.")] = 0.0,
) -> None:
    """Print the model's answer to one question."""
    from tailor.serve.generation import chat, load_for_inference

    with user_errors():
        loaded = load_for_inference(model, load_settings())
        answer = chat(loaded, [question], system=system, max_new_tokens=max_tokens,
                      temperature=temperature)[0]
    typer.echo(answer)


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option("--out", help="Where to put the run.")] = None,
) -> None:
    """The quickstart: convert, validate and fine-tune tailor.tiny on Q&A about Tailor itself."""
    from tailor.quickstart import run_demo

    with user_errors():
        run_demo(out, load_settings())


# ---------------------------------------------------------------------------------------------
# tailor serve / keys


LOOPBACK = ("127.0.0.1", "localhost", "::1")
keys_app = typer.Typer(no_args_is_help=True, help="Access keys for the API (AWS SigV4).")
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    insecure_local: Annotated[bool, typer.Option(
        "--insecure-local", help="Accept any credentials (loopback only, single-user machines).")] = False,
    no_runner: Annotated[bool, typer.Option(
        "--no-runner", help="Serve the API only; another server sharing the database runs the jobs.")] = False,
) -> None:
    """Run the Bedrock-compatible API server and the job runner."""
    import uvicorn

    from tailor.api.app import create_app

    with user_errors():
        if insecure_local and host not in LOOPBACK:
            raise InvalidInput(f"--insecure-local binds only to loopback ({', '.join(LOOPBACK)}), not {host}.")
        settings = load_settings()
        # Everything the server and its workers create under TAILOR_HOME (the database, buckets,
        # job folders, logs) is the operator's alone: no other account on the machine reads it.
        os.umask(0o077)
        application = create_app(settings, insecure_local=insecure_local, run_jobs=not no_runner,
                                 listen=(host, port))
    if insecure_local:
        typer.secho("WARNING: --insecure-local: requests are NOT authenticated; any credentials are "
                    f"accepted. Listening on {host} only.", fg="red", bold=True, err=True)
    say(f"Tailor API on http://{host}:{port} (state in {settings.home})")
    uvicorn.run(application, host=host, port=port, log_level="info")


@app.command()
def doctor() -> None:
    """Check this installation's state (database, keys, folders, buckets, grader sandbox, disk) and
    say what to fix; exit code 1 when something will fail."""
    from tailor.services.doctor import examine

    with user_errors():
        findings = examine(load_settings())
    colors = {"ok": "green", "warning": "yellow", "problem": "red"}
    for finding in findings:
        typer.secho(f"{finding.status:<8} {finding.check}: {finding.detail}", fg=colors[finding.status])
    if any(finding.status == "problem" for finding in findings):
        raise typer.Exit(EXIT_INVALID)


@keys_app.command("create")
def keys_create(
    principal: Annotated[str, typer.Option("--principal", help="Who the key belongs to.")] = "default",
) -> None:
    """Create an access key pair; the secret is printed once and stored only encrypted."""
    from tailor.jobs.store import open_store
    from tailor.services.keys import api_key, create_key

    with user_errors():
        settings = load_settings()
        access_key_id, secret = create_key(open_store(settings), settings, principal)
    typer.echo(f"aws_access_key_id = {access_key_id}")
    typer.echo(f"aws_secret_access_key = {secret}")
    typer.echo(f"api_key = {api_key(access_key_id, secret)}  # bearer key for OpenAI clients")
    say(f"Key for principal {principal!r}. The secret is not shown again.")


# ---------------------------------------------------------------------------------------------
# tailor jobs / models / data: thin clients of a running server, through boto3 like any script


jobs_app = typer.Typer(no_args_is_help=True, help="Customization jobs on a Tailor server.")
models_app = typer.Typer(no_args_is_help=True, help="Custom models on a Tailor server.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets in local buckets.")
app.add_typer(jobs_app, name="jobs")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")

EndpointOption = Annotated[str | None, typer.Option(
    "--endpoint", help="Server URL (default: $TAILOR_ENDPOINT, else http://127.0.0.1:8080).")]


def bedrock_client(endpoint: str | None):
    """A boto3 bedrock client for the server; credentials come from the usual AWS chain
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, AWS_PROFILE)."""
    import boto3
    from botocore.config import Config

    url = endpoint or os.environ.get("TAILOR_ENDPOINT") or "http://127.0.0.1:8080"
    return boto3.client("bedrock", endpoint_url=url, region_name=os.environ.get("AWS_REGION", "us-east-1"),
                        config=Config(retries={"max_attempts": 2}))


@contextmanager
def api_errors() -> Iterator[None]:
    """Server errors as one line (``error: Code: message``), exit 2; never a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        with user_errors():
            yield
    except ClientError as error:
        details = error.response.get("Error", {})
        typer.echo(f"error: {details.get('Code')}: {details.get('Message')}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    except BotoCoreError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_ERROR) from None


def print_json(value) -> None:
    typer.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


@jobs_app.command("create")
def jobs_create(
    name: Annotated[str, typer.Option("--name", help="Job name.")],
    model: Annotated[str, typer.Option("--model", help="Base model id (or aliased original id).")],
    train: Annotated[str, typer.Option("--train", help="Training data URI (s3:// or a path the server reads).")],
    output: Annotated[str, typer.Option("--output", help="Output URI for metrics.")],
    custom_model_name: Annotated[str | None, typer.Option("--custom-model-name")] = None,
    customization_type: Annotated[DataType, typer.Option("--type")] = DataType.FINE_TUNING,
    validation: Annotated[list[str] | None, typer.Option("--validation")] = None,
    hp: Annotated[list[str] | None, typer.Option("--hp", help="name=value; repeat.")] = None,
    endpoint: EndpointOption = None,
) -> None:
    """Create a customization job; prints its ARN."""
    with api_errors():
        request = dict(jobName=name, customModelName=custom_model_name or f"{name}-model",
                       roleArn="arn:aws:iam::000000000000:role/tailor", baseModelIdentifier=model,
                       customizationType=customization_type.value, hyperParameters=_parse_assignments(hp or []),
                       trainingDataConfig={"s3Uri": train}, outputDataConfig={"s3Uri": output})
        if validation:
            request["validationDataConfig"] = {"validators": [{"s3Uri": uri} for uri in validation]}
        typer.echo(bedrock_client(endpoint).create_model_customization_job(**request)["jobArn"])


@jobs_app.command("get")
def jobs_get(job: Annotated[str, typer.Argument(help="Job name or ARN.")], endpoint: EndpointOption = None) -> None:
    """Print a job as JSON."""
    with api_errors():
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
    with api_errors():
        pages = bedrock_client(endpoint).get_paginator("list_model_customization_jobs").paginate(**filters)
        for page in pages:
            for job in page["modelCustomizationJobSummaries"]:
                typer.echo(f"{job['jobName']}\t{job['status']}\t{job['jobArn']}")


@jobs_app.command("stop")
def jobs_stop(job: Annotated[str, typer.Argument(help="Job name or ARN.")], endpoint: EndpointOption = None) -> None:
    """Ask a job to stop (it becomes Stopping, then Stopped)."""
    with api_errors():
        bedrock_client(endpoint).stop_model_customization_job(jobIdentifier=job)
    say(f"Stopping {job}.")


@jobs_app.command("logs")
def jobs_logs(job: Annotated[str, typer.Argument(help="Job name or ARN.")]) -> None:
    """Print a job's worker log (run on the server's machine: logs stay under TAILOR_HOME)."""
    from sqlalchemy import or_, select

    from tailor.jobs.store import Job, open_store

    with user_errors():
        store = open_store(load_settings())
        with store.session() as session:
            row = session.scalar(select(Job).where(or_(Job.arn == job, Job.name == job)))
        if row is None:
            raise InvalidInput(f"No job {job} under this TAILOR_HOME.")
        log_file = Path(row.work_dir) / "job.log"
        typer.echo(log_file.read_text() if log_file.exists() else f"(no log yet: {row.status})")


@models_app.command("list")
def models_list(endpoint: EndpointOption = None) -> None:
    """List custom models: name, status, ARN."""
    with api_errors():
        for page in bedrock_client(endpoint).get_paginator("list_custom_models").paginate():
            for model in page["modelSummaries"]:
                typer.echo(f"{model['modelName']}\t{model.get('modelStatus', '')}\t{model['modelArn']}")


@data_app.command("upload")
def data_upload(
    file: Annotated[Path, typer.Argument(help="Local file.")],
    uri: Annotated[str, typer.Argument(
        help="s3://BUCKET/KEY: the S3 service at TAILOR_S3_ENDPOINT_URL, else a local bucket under TAILOR_HOME.")],
    principal: Annotated[str, typer.Option("--principal", help="Whose file it is: a new bucket becomes this "
                                           "principal's; an existing one must be theirs or shared with them.")],
) -> None:
    """Put a file where jobs read s3:// URIs: the S3 endpoint if one is configured
    (TAILOR_S3_ENDPOINT_URL), else a local bucket under TAILOR_HOME."""
    from tailor.jobs.store import open_store
    from tailor.services.buckets import prepare_upload
    from tailor.storage import upload_file

    with user_errors():
        if not uri.startswith("s3://"):
            raise InvalidInput(f"Expected an s3://BUCKET/KEY URI, got {uri!r}.")
        if not file.is_file():
            raise InvalidInput(f"No file at {file}.")
        settings = load_settings()
        prepare_upload(open_store(settings), settings, principal, uri)
        destination = upload_file(file, uri, settings)
    where = destination if isinstance(destination, Path) else f"S3 endpoint {settings.s3_endpoint_url}"
    say(f"Uploaded {file} to {uri} ({where}) for {principal}.")


# ---------------------------------------------------------------------------------------------
# tailor buckets: who owns which bucket, and what the operator shared (docs/security.md)

buckets_app = typer.Typer(no_args_is_help=True, help="Buckets and who may use them: each belongs to one "
                          "principal; the operator can share one with others.")
app.add_typer(buckets_app, name="buckets")


@buckets_app.command("create")
def buckets_create(
    name: Annotated[str, typer.Argument(help="Bucket name (S3's rules: 3-63 lowercase letters, digits, '.', '-').")],
    owner: Annotated[str, typer.Option("--owner", help="The principal it belongs to.")],
) -> None:
    """Create a bucket for a principal (a local bucket, or one on the S3 endpoint), or give a bucket
    that predates ownership to its principal."""
    from tailor.jobs.store import open_store
    from tailor.services.buckets import create_bucket

    with user_errors():
        settings = load_settings()
        created = create_bucket(open_store(settings), settings, name, owner)
    say(f"Bucket {name} belongs to {owner}" + ("." if created else " (already)."))


@buckets_app.command("grant")
def buckets_grant(
    name: Annotated[str, typer.Argument(help="Bucket name.")],
    principal: Annotated[str, typer.Option("--principal", help="Who gets access.")],
    access: Annotated[str, typer.Option("--access", help="read, or write (which includes read).")] = "read",
) -> None:
    """Share a bucket with another principal."""
    from tailor.jobs.store import open_store
    from tailor.services.buckets import grant

    with user_errors():
        grant(open_store(load_settings()), name, principal, access)
    say(f"{principal} may now {'read and write' if access == 'write' else 'read'} bucket {name}.")


@buckets_app.command("revoke")
def buckets_revoke(
    name: Annotated[str, typer.Argument(help="Bucket name.")],
    principal: Annotated[str, typer.Option("--principal", help="Whose access ends.")],
) -> None:
    """Take back what ``grant`` gave (jobs already created keep what they were authorised)."""
    from tailor.jobs.store import open_store
    from tailor.services.buckets import revoke

    with user_errors():
        revoke(open_store(load_settings()), name, principal)
    say(f"{principal} no longer has access to bucket {name}.")


@buckets_app.command("list")
def buckets_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every bucket with its owner and grants."""
    from tailor.jobs.store import open_store
    from tailor.services.buckets import list_buckets

    with user_errors():
        rows = list_buckets(open_store(load_settings()))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        shared = ", ".join(f"{grant['principal']}:{grant['access']}" for grant in row["grants"]) or "-"
        typer.echo(f"{row['name']}\t{row['owner']}\t{shared}")


@data_app.command("coverage")
def data_coverage(
    train: Annotated[str, typer.Option("--train", help="Training data: JSONL in any training format, or a "
                                       "JSON list of Q&A pairs (path or s3:// URI).")],
    eval_file: Annotated[str, typer.Option("--eval", help="Evaluation questions: JSONL of {prompt, "
                                           "referenceResponse, category} (path or s3:// URI).")],
    threshold: Annotated[int, typer.Option("--threshold", min=0, help="Flag questions covered by at most "
                                           "this many training records.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """How many training records cover each evaluation question's key terms; flags the questions
    the training data barely covers (exit code 1 when any is flagged)."""
    from tailor.evaluate.coverage import coverage_report, render_text
    from tailor.storage import local_path

    with user_errors():
        settings = load_settings()
        report = coverage_report(local_path(train, settings), local_path(eval_file, settings), threshold=threshold)
        report.update(training_file=train, evaluation_file=eval_file)
    typer.echo(json.dumps(report, indent=2, ensure_ascii=False) if as_json else render_text(report))
    if report["under_covered"]:
        raise typer.Exit(EXIT_INVALID)


# ---------------------------------------------------------------------------------------------
# tailor eval

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate models against reference answers.")
app.add_typer(eval_app, name="eval")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@eval_app.command("compare")
def eval_compare(
    models: Annotated[str, typer.Option("--models", help="Comma-separated models: ids, custom model or "
                                        "deployment names/ARNs, training output folders, openai:MODEL@URL, "
                                        "bedrock:MODEL[@URL].")],
    data: Annotated[str, typer.Option("--data", help="Evaluation JSONL: {prompt, referenceResponse, category}.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for comparison.json, comparison.csv, report.html.")],
    judge: Annotated[str | None, typer.Option("--judge", help="Judge model (same forms as --models); "
                                              "adds Builtin.Correctness unless --metrics says otherwise.")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", help="Comma-separated metric names (default: "
                                                "exact match, ROUGE-1/2/L, BERTScore P/R/F1).")] = None,
    train: Annotated[str | None, typer.Option("--train", help="The training data, for a coverage section.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt for the models.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest answer in tokens.")] = 256,
    task_type: Annotated[str, typer.Option("--task-type", help="What Builtin.Accuracy measures: "
                                           "QuestionAndAnswer, Summarization, Classification, ...")]
    = "QuestionAndAnswer",
    principal: Annotated[str, typer.Option("--principal", help="Whose custom models and deployments to "
                                           "look up by name.")] = "local",
) -> None:
    """Ask every model every question, score the answers, and write a side-by-side report."""
    from tailor.evaluate.backends import Generation, Opener
    from tailor.evaluate.dataset import load_questions
    from tailor.evaluate.report import summary_text, write_report
    from tailor.evaluate.run import DEFAULT_METRICS, check_metrics, compare, needs_reference, with_coverage
    from tailor.jobs.store import open_store
    from tailor.services.inference import weights_for

    with user_errors():
        settings = load_settings()
        chosen = _names(metrics) if metrics else [*DEFAULT_METRICS, *(["Builtin.Correctness"] if judge else [])]
        check_metrics(chosen, has_judge=judge is not None, field="--metrics")
        specs = _names(models)
        if not specs:
            raise InvalidInput("--models: name at least one model.")
        questions = load_questions(data, settings, reference_required=needs_reference(chosen),
                                   needed_for="the automatic metrics")

        store = open_store(settings)  # custom models and deployments are looked up by name or ARN

        def resolve(identifier: str):
            return weights_for(store, settings, principal, identifier, allow_folders=True)

        with Opener(settings, resolve, max_models=len(specs) + 1, allow_urls=True) as opener:
            backends = [opener.open(spec) for spec in specs]
            comparison = compare(questions, backends, chosen, judge=opener.open(judge) if judge else None,
                                 task_type=task_type, generation=Generation(max_tokens=max_tokens, system=system),
                                 settings=settings)
        if train:
            comparison = with_coverage(comparison, train, data, settings)
        paths = write_report(comparison, out)
    typer.echo(summary_text(comparison))
    if comparison.coverage and comparison.coverage["under_covered"]:
        flagged = [q["prompt"] for q in comparison.coverage["questions"] if q["under_covered"]]
        say(f"Coverage warning: the training data barely covers {len(flagged)} question(s): " + "; ".join(flagged))
    say(f"Report: {paths['html']} (also {paths['json'].name}, {paths['csv'].name})")


# ---------------------------------------------------------------------------------------------
# tailor graders: RFT graders registered on this machine (docs/graders.md)

graders_app = typer.Typer(no_args_is_help=True, help="Reward graders for reinforcement fine-tuning "
                          "(AWS Lambda contract).")
app.add_typer(graders_app, name="graders")


@graders_app.command("create")
def graders_create(
    name: Annotated[str, typer.Argument(help="Grader name: letters, digits, '-', '_', '.' (at most 64).")],
    file: Annotated[Path | None, typer.Option("--file", help="Python file defining lambda_handler(event, "
                                              "context); its source is stored.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="An HTTP grader: batches are POSTed here as "
                                            "JSON.")] = None,
    timeout: Annotated[int, typer.Option("--timeout", help="Seconds one batch may take (1-900).")] = 30,
    memory_mb: Annotated[int, typer.Option("--memory-mb", help="Memory limit of a Python grader, MB "
                                           "(128-10240).")] = 1024,
    env: Annotated[list[str] | None, typer.Option("--env", help="NAME=VALUE for a Python grader's "
                                                  "environment; repeat.")] = None,
) -> None:
    """Register a grader; prints its ARN (what an RFT job names as lambdaArn)."""
    from tailor.graders.registry import create_grader
    from tailor.jobs.store import open_store

    with user_errors():
        settings = load_settings()
        environment = {}
        for pair in env or []:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise InvalidInput(f"--env expects NAME=VALUE, got {pair!r}.")
            environment[key] = value
        info = create_grader(open_store(settings), settings, name, file=file, url=url, timeout_seconds=timeout,
                             memory_mb=memory_mb, environment=environment)
    typer.echo(info.arn)
    limits = f"timeout {info.timeout_seconds} s" + (f", memory {info.memory_mb} MB" if info.kind == "python" else "")
    say(f"Registered {info.kind} grader {info.name} ({limits}).")
    if info.kind == "python":
        from tailor.graders.sandbox import sandbox_problem

        if problem := sandbox_problem():
            say(f"Warning: {problem} Until it is fixed, this grader scores every sample 0.")


@graders_app.command("list")
def graders_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the registered graders: name, kind, timeout, memory, ARN."""
    from tailor.graders.registry import list_graders
    from tailor.jobs.store import open_store

    with user_errors():
        graders = list_graders(open_store(load_settings()))
    if as_json:
        print_json([info.summary() for info in graders])
        return
    for info in graders:
        memory = f"{info.memory_mb}MB" if info.kind == "python" else "-"
        typer.echo(f"{info.name}\t{info.kind}\t{info.timeout_seconds}s\t{memory}\t{info.arn}")


@graders_app.command("delete")
def graders_delete(grader: Annotated[str, typer.Argument(help="Grader name or ARN.")]) -> None:
    """Delete a registered grader."""
    from tailor.graders.registry import delete_grader
    from tailor.jobs.store import open_store

    with user_errors():
        settings = load_settings()
        info = delete_grader(open_store(settings), settings, grader)
    say(f"Deleted grader {info.name}.")


@graders_app.command("templates")
def graders_templates(
    copy: Annotated[tuple[str, Path] | None, typer.Option("--copy", metavar="NAME DEST",
                                                          help="Copy template NAME to DEST (a file or "
                                                          "folder).")] = None,
) -> None:
    """List the grader templates, or copy one to start from."""
    from tailor.graders.template_files import copy_template, template_names, template_summary

    with user_errors():
        if copy:
            target = copy_template(copy[0], copy[1])
            say(f"Copied {copy[0]} to {target}; register it with: tailor graders create NAME --file {target}")
            return
        for name in template_names():
            typer.echo(f"{name}\t{template_summary(name)}")


@graders_app.command("test")
def graders_test(
    grader: Annotated[str, typer.Argument(help="Grader name or ARN.")],
    data: Annotated[str, typer.Option("--data", help="RFT JSONL: {messages, reference_answer, ...} per line "
                                      "(path or s3:// URI).")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Records to grade (the first N).")] = 20,
) -> None:
    """Grade records of an RFT dataset as training would, and print every reward.

    The answer graded for each record is its own last assistant turn when it has one, else its
    reference_answer as text: a sanity check that a correct answer scores high. Exit 1 when
    every sample failed (an error, or a judge_error metric).
    """
    from tailor.graders.contract import sample
    from tailor.graders.registry import get_grader, grade
    from tailor.jobs.store import open_store
    from tailor.storage import local_path

    with user_errors():
        settings = load_settings()
        info = get_grader(open_store(settings), grader)
        if info.kind == "python":
            from tailor.graders.sandbox import sandbox_problem

            if problem := sandbox_problem():
                raise InvalidInput(problem)
        records = _rft_records(local_path(data, settings), limit)
        samples = [sample(record, completion, f"line-{line}") for line, record, completion in records]
        results = grade(info, samples, settings, log=lambda text: say(f"[grader log]\n{text}"))
    failures = 0
    for (line, _, _), result in zip(records, results):
        metrics = "  ".join(f"{name}={value:.3g}" for name, value in result.metrics.items())
        typer.echo(f"line {line}: reward {result.reward:.3f}" + (f"  {metrics}" if metrics else ""))
        if result.error:
            typer.echo(f"  error: {result.error}")
        failures += bool(result.error or result.metrics.get("judge_error"))
    mean = sum(result.reward for result in results) / len(results)
    typer.echo(f"mean reward {mean:.3f} over {len(results)} sample{'' if len(results) == 1 else 's'}; "
               f"{failures} error{'' if failures == 1 else 's'}")
    if failures == len(results):
        raise typer.Exit(EXIT_INVALID)


def _rft_records(path: Path, limit: int) -> list[tuple[int, dict, str]]:
    """(line number, record without its answer, the answer to grade) for the first ``limit`` records."""
    records, problems = [], []
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if len(records) >= limit:
                break
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError as error:
                problems.append(f"line {number}: not JSON ({error})")
                continue
            if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
                problems.append(f"line {number}: expected an object with a \"messages\" list")
                continue
            messages = record["messages"]
            if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
                answer = messages[-1].get("content")
                record = {**record, "messages": messages[:-1]}
            else:
                answer = record.get("reference_answer")
            records.append((number, record, answer if isinstance(answer, str) else json.dumps(answer)))
    if problems:
        raise InvalidInput(f"{path}: " + "; ".join(problems[:10]))
    if not records:
        raise InvalidInput(f"{path} holds no records.")
    return records
