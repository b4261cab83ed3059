"""``tailor keys create|list|revoke``: the API's access keys. They change this machine's database
directly: run them where the server runs, with its TAILOR_HOME. ``create`` also saves the key for
the CLI's own server calls (``tailor.cli.credentials``)."""

from __future__ import annotations

from typing import Annotated

import typer

from tailor.cli.common import JsonOption, load_settings, print_json, say, user_errors

keys_app = typer.Typer(no_args_is_help=True, help="Access keys for the API (AWS SigV4, or a bearer API key).")


@keys_app.command("create")
def keys_create(
    principal: Annotated[str, typer.Option("--principal", help="Who the key belongs to.")] = "default",
    save: Annotated[bool, typer.Option("--save/--no-save", help="Save the key as the one this CLI's `jobs` and "
                                       "`models` commands sign with (in TAILOR_HOME, mode 0600).")] = True,
) -> None:
    """Create an access key pair; the secret is printed once and stored only encrypted."""
    from tailor.cli.credentials import save_key
    from tailor.services.keys import api_key, create_key
    from tailor.store.db import open_store

    with user_errors():
        settings = load_settings()
        access_key_id, secret = create_key(open_store(settings), settings, principal)
        saved = save_key(settings.home, access_key_id, secret, principal) if save else None
    typer.echo(f"aws_access_key_id = {access_key_id}")
    typer.echo(f"aws_secret_access_key = {secret}")
    typer.echo(f"api_key = {api_key(access_key_id, secret)}  # bearer key for OpenAI clients")
    say(f"Key for principal {principal!r}. The secret is not shown again.")
    if saved:
        say(f"Saved in {saved}: `tailor jobs` and `tailor models` now act as {principal!r}.")


@keys_app.command("list")
def keys_list(as_json: JsonOption = False) -> None:
    """Every access key: id, principal, when it was made; '*' marks the one this CLI signs with."""
    from tailor.cli.credentials import saved_key
    from tailor.services.keys import list_keys
    from tailor.store.db import open_store

    with user_errors():
        settings = load_settings()
        keys = list_keys(open_store(settings))
        saved = saved_key(settings.home)
    in_use = saved.access_key_id if saved else None
    if as_json:
        print_json([{"accessKeyId": key.access_key_id, "principal": key.principal,
                     "createdAt": key.created_at.isoformat(), "usedByCli": key.access_key_id == in_use}
                    for key in keys])
        return
    for key in keys:
        mark = "\t*" if key.access_key_id == in_use else ""
        typer.echo(f"{key.access_key_id}\t{key.principal}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}{mark}")


@keys_app.command("revoke")
def keys_revoke(
    key_or_principal: Annotated[str, typer.Argument(
        metavar="NAME_OR_ID", help="An access key id (TKIA...), or a principal's name: all of its keys.")],
) -> None:
    """Revoke access keys: the server refuses them from the next request on."""
    from tailor.cli.credentials import forget_keys
    from tailor.services.keys import revoke_keys
    from tailor.store.db import open_store

    with user_errors():
        settings = load_settings()
        revoked = revoke_keys(open_store(settings), key_or_principal)
        forgotten = forget_keys(settings.home, {key.access_key_id for key in revoked})
    for key in revoked:
        say(f"Revoked {key.access_key_id} of principal {key.principal!r}.")
    if forgotten:
        say("It was the key this CLI signed with; run `tailor keys create` for a new one.")
