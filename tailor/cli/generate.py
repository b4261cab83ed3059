"""``tailor generate``: answer one question with a model loaded in this process (no server).

The model may be anything ``tailor train`` takes (a catalog id or alias, a training output folder,
a model directory, a hub id) or a custom model a job made on this machine, by name or ARN: the
name is looked up in the local store (``services.inference.weights_for``), scoped to a principal
as the API would be.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tailor.cli.common import load_settings, user_errors
from tailor.cli.credentials import LOCAL_PRINCIPAL, default_principal
from tailor.errors import NotFound
from tailor.settings import Settings


def generate(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str, typer.Option("--model", help="A catalog id or alias, a training output folder, a model "
                                       "directory, a hub id, or a custom model's name or ARN.")],
    system: Annotated[str | None, typer.Option("--system", help="System prompt.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Longest answer in tokens.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0, help="0 is greedy.")] = 0.0,
    principal: Annotated[str | None, typer.Option(
        "--principal", help="Whose custom model a name means (default: the principal of the key `tailor keys "
        f"create` saved, else '{LOCAL_PRINCIPAL}').")] = None,
) -> None:
    """Print the model's answer to one question."""
    from tailor.serve.generation import chat

    with user_errors():
        settings = load_settings()
        loaded = load_model(model, settings, principal)
        answer = chat(loaded, [question], system=system, max_new_tokens=max_tokens, temperature=temperature)[0]
    typer.echo(answer)


def load_model(model: str, settings: Settings, principal: str | None):
    """Load ``model`` for inference: what the catalog resolves (an id, alias, folder or hub id), else
    a custom model of ``principal`` by name or ARN (a deployment's name works too: its model answers)."""
    from tailor.catalog import resolve_model
    from tailor.serve.generation import load_for_inference

    try:
        resolve_model(model, settings)
    except NotFound:
        pass  # not a catalog id, folder or hub id: perhaps a custom model's name or ARN
    else:
        return load_for_inference(model, settings)
    from tailor.services.inference import weights_for
    from tailor.store.db import open_store

    principal = principal or default_principal(settings.home)
    try:
        target = weights_for(open_store(settings), settings, principal, model)
    except NotFound:
        raise NotFound(f"Unknown model {model!r}: not a catalog id or alias, a training output folder, a model "
                       f"directory, a hub id ('org/name'), or a custom model or deployment of principal "
                       f"{principal!r} (--principal).") from None
    from tailor.serve.generation import load_target

    return load_target(target, settings)
