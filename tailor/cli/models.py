"""``tailor models list``: custom models on a running Tailor server, through its API (boto3).
``tailor models export``: a model's weights written out here, as the server's operator — a merged
Hugging Face folder or a GGUF file (docs/export.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tailor.cli.client import EndpointOption, api_errors, bedrock_client
from tailor.cli.common import load_settings, print_json, say, user_errors
from tailor.cli.credentials import LOCAL_PRINCIPAL

models_app = typer.Typer(no_args_is_help=True, help="Custom models on a Tailor server.")


@models_app.command("list")
def models_list(endpoint: EndpointOption = None) -> None:
    """List custom models: name, status, ARN."""
    with api_errors(endpoint):
        for page in bedrock_client(endpoint).get_paginator("list_custom_models").paginate():
            for model in page["modelSummaries"]:
                typer.echo(f"{model['modelName']}\t{model.get('modelStatus', '')}\t{model['modelArn']}")


class ExportFormat(StrEnum):
    hf = "hf"
    gguf = "gguf"


class TensorType(StrEnum):
    f16 = "f16"
    f32 = "f32"
    q8_0 = "q8_0"


@models_app.command("export")
def models_export(
    model: Annotated[str, typer.Argument(help="A custom model (name or ARN), an ft: name, a deployment, or a "
                                         "training output folder.")],
    out: Annotated[Path, typer.Option("--out", help="hf: the folder to write (absent or empty); gguf: the "
                                      ".gguf file, or a folder to write NAME.gguf into.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="hf: merged Hugging Face weights; gguf: one "
                                              "GGUF file for llama.cpp (Llama-architecture models).")]
    = ExportFormat.hf,
    tensor_type: Annotated[TensorType, typer.Option("--tensor-type", help="gguf: how matrices are stored "
                                                    "(norms are always F32).")] = TensorType.f16,
    principal: Annotated[str | None, typer.Option(
        "--principal", help="Whose custom models and deployments a name means (default: the principal of the key "
        f"`tailor keys create` saved, else '{LOCAL_PRINCIPAL}').")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write a model's weights here: a LoRA adapter merged into its base, read back and checked."""
    import time

    from tailor.cli.credentials import default_principal
    from tailor.export.hf import Source
    from tailor.export.model import export
    from tailor.services.inference import weights_for
    from tailor.store.db import open_store

    with user_errors():
        settings = load_settings()
        principal = principal or default_principal(settings.home)
        target = weights_for(open_store(settings), settings, principal, model, allow_folders=True)
        # What the files are called: a folder's name, or the last part of a name or ARN.
        name = model.rstrip("/").rsplit("/", 1)[-1].removeprefix("ft:")
        started = time.perf_counter()
        exported = export(Source(base=target.base, adapter=target.adapter, name=name), fmt.value, out, settings,
                          tensor_type=tensor_type.value, progress=lambda note: say(f"  {note}"))
        seconds = time.perf_counter() - started
    if json_output:
        print_json({**exported.summary(), "seconds": round(seconds, 2)})
        return
    typer.echo(f"Exported {model} as {fmt.value} to {exported.path} in {seconds:.1f} s")
    for file, size in exported.files.items():
        typer.echo(f"  {file}\t{_size(size)}")
    typer.echo(f"  total\t{_size(exported.size_bytes)}")
    typer.echo("Checks:")
    for check in exported.checks:
        typer.echo(f"  ok  {check}")


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"
