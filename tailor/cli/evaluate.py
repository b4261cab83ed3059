"""``tailor eval compare``: ask several models the same questions in this process, score the answers
and write a side-by-side report (docs/evaluation.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tailor.cli.common import load_settings, say, user_errors
from tailor.cli.credentials import LOCAL_PRINCIPAL, default_principal
from tailor.errors import InvalidInput

eval_app = typer.Typer(no_args_is_help=True, help="Evaluate models against reference answers.")


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
    train: Annotated[str | None, typer.Option("--train", help="The training data (JSONL path or s3:// URI), "
                                              "for a coverage section.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt for the models.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest answer in tokens.")] = 256,
    task_type: Annotated[str, typer.Option("--task-type", help="What Builtin.Accuracy measures: "
                                           "QuestionAndAnswer, Summarization, Classification, ...")]
    = "QuestionAndAnswer",
    principal: Annotated[str | None, typer.Option(
        "--principal", help="Whose custom models and deployments a name means (default: the principal of the key "
        f"`tailor keys create` saved, else '{LOCAL_PRINCIPAL}').")] = None,
) -> None:
    """Ask every model every question, score the answers, and write a side-by-side report."""
    from tailor.evaluate.backends import Generation, Opener
    from tailor.evaluate.dataset import load_questions
    from tailor.evaluate.report import summary_text, write_report
    from tailor.evaluate.run import (
        DEFAULT_METRICS,
        check_metrics,
        compare,
        needs_reference,
        with_coverage,
    )
    from tailor.services.inference import weights_for
    from tailor.store.db import open_store

    with user_errors():
        settings = load_settings()
        principal = principal or default_principal(settings.home)
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
