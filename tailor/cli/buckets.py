"""``tailor buckets create|grant|revoke|list``: the operator says who owns which bucket and shares
them (docs/security.md). They change this machine's database directly: run them where the server
runs, with its TAILOR_HOME."""

from __future__ import annotations

from typing import Annotated

import typer

from tailor.cli.common import JsonOption, load_settings, print_json, say, user_errors

buckets_app = typer.Typer(no_args_is_help=True, help="Buckets and who may use them: each belongs to one "
                          "principal; the operator can share one with others.")


@buckets_app.command("create")
def buckets_create(
    name: Annotated[str, typer.Argument(help="Bucket name (S3's rules: 3-63 lowercase letters, digits, '.', '-').")],
    owner: Annotated[str, typer.Option("--owner", help="The principal it belongs to.")],
) -> None:
    """Create a bucket for a principal (a local bucket, or one on the S3 endpoint), or give a bucket
    that predates ownership to its principal."""
    from tailor.services.buckets import create_bucket
    from tailor.store.db import open_store

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
    from tailor.services.buckets import grant
    from tailor.store.db import open_store

    with user_errors():
        grant(open_store(load_settings()), name, principal, access)
    say(f"{principal} may now {'read and write' if access == 'write' else 'read'} bucket {name}.")


@buckets_app.command("revoke")
def buckets_revoke(
    name: Annotated[str, typer.Argument(help="Bucket name.")],
    principal: Annotated[str, typer.Option("--principal", help="Whose access ends.")],
) -> None:
    """Take back what ``grant`` gave (jobs already created keep what they were authorised)."""
    from tailor.services.buckets import revoke
    from tailor.store.db import open_store

    with user_errors():
        revoke(open_store(load_settings()), name, principal)
    say(f"{principal} no longer has access to bucket {name}.")


@buckets_app.command("list")
def buckets_list(as_json: JsonOption = False) -> None:
    """Every bucket with its owner and grants."""
    from tailor.services.buckets import list_buckets
    from tailor.store.db import open_store

    with user_errors():
        rows = list_buckets(open_store(load_settings()))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        shared = ", ".join(f"{grant['principal']}:{grant['access']}" for grant in row["grants"]) or "-"
        typer.echo(f"{row['name']}\t{row['owner']}\t{shared}")
