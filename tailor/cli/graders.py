"""``tailor graders create|list|delete|templates|test``: reward graders for reinforcement
fine-tuning, registered on this machine (docs/graders.md). Run them where the server runs, with its
TAILOR_HOME: a job snapshots the grader it names when it is created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tailor.cli.common import (
    EXIT_INVALID,
    JsonOption,
    load_settings,
    parse_assignments,
    print_json,
    read_jsonl,
    say,
    user_errors,
)
from tailor.errors import InvalidInput

graders_app = typer.Typer(no_args_is_help=True, help="Reward graders for reinforcement fine-tuning "
                          "(AWS Lambda contract).")


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
    from tailor.store.db import open_store

    with user_errors():
        settings = load_settings()
        environment = parse_assignments(env, "--env")
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
def graders_list(as_json: JsonOption = False) -> None:
    """List the registered graders: name, kind, timeout, memory, ARN."""
    from tailor.graders.registry import list_graders
    from tailor.store.db import open_store

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
    from tailor.store.db import open_store

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
    from tailor.graders.template_files import (
        copy_template,
        template_names,
        template_summary,
    )

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
    from tailor.storage import local_path
    from tailor.store.db import open_store

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
    def problem(record) -> str | None:
        if not isinstance(record, dict) or not isinstance(record.get("messages"), list):
            return 'expected an object with a "messages" list'
        return None

    records = []
    for number, record in read_jsonl(path, limit=limit, check=problem):
        messages = record["messages"]
        if messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
            answer = messages[-1].get("content")
            record = {**record, "messages": messages[:-1]}
        else:
            answer = record.get("reference_answer")
        records.append((number, record, answer if isinstance(answer, str) else json.dumps(answer)))
    if not records:
        raise InvalidInput(f"{path} holds no records.")
    return records
