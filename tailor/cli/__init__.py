"""The ``tailor`` command line: a thin shell over the library that turns errors into messages.

One module per command group; this one assembles them into ``app`` (the ``tailor`` script and
``python -m tailor``). Commands that work on this machine's files and database: ``validate``,
``convert`` and ``data`` (data.py), ``train`` (train.py), ``generate`` (generate.py), ``demo``
(demo.py), ``eval`` (evaluate.py), ``serve`` and ``doctor`` (serve.py), ``keys`` (keys.py),
``buckets`` (buckets.py), ``graders`` (graders.py). Clients of a running server: ``jobs`` (jobs.py)
and ``models`` (models.py), through client.py and credentials.py. Shared: common.py (exit codes,
errors, output, NAME=VALUE and JSON Lines parsing).

Heavy libraries (torch, transformers) are imported inside the commands that need them, so
``tailor --help`` and the server-client commands start fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tailor.cli import (
    buckets,
    data,
    demo,
    evaluate,
    generate,
    graders,
    jobs,
    keys,
    models,
    serve,
    train,
)

__all__ = ["app"]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"tailor {version('tailor')}")
        raise typer.Exit()


app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                         help="Print Tailor's version and exit.")] = False,
) -> None:
    """Customize open LLMs on your own machines; Bedrock- and OpenAI-compatible server."""


app.command()(data.validate)
app.command()(train.train)
app.command()(generate.generate)
app.command()(demo.demo)
app.command()(serve.serve)
app.command()(serve.doctor)
app.add_typer(data.convert_app, name="convert")
app.add_typer(data.data_app, name="data")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(buckets.buckets_app, name="buckets")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(models.models_app, name="models")
app.add_typer(evaluate.eval_app, name="eval")
app.add_typer(graders.graders_app, name="graders")
