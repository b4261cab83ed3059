"""Datasets: ``tailor validate``, ``tailor convert qa|prompt-completion`` and ``tailor data
upload|coverage``. They work on files on this machine and need no server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tailor.catalog import CustomizationType, ResolvedModel, resolve_model
from tailor.cli.common import EXIT_INVALID, DataType, load_settings, say, user_errors
from tailor.errors import InvalidInput, TailorError
from tailor.settings import Settings

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

convert_app = typer.Typer(no_args_is_help=True, help="Convert datasets to messages JSONL.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets in buckets: upload, coverage of evaluation questions.")


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
    from tailor.data.datasets import validate_dataset
    from tailor.data.validate import accepted_formats

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
    from tailor.services.buckets import prepare_upload
    from tailor.storage import upload_file
    from tailor.store.db import open_store

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
