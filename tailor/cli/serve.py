"""``tailor serve`` runs the API server and the job runner; ``tailor doctor`` checks the state they
keep under TAILOR_HOME and says what to fix."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tailor.cli.common import EXIT_INVALID, load_settings, say, user_errors
from tailor.errors import InvalidInput

LOOPBACK = ("127.0.0.1", "localhost", "::1")


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
