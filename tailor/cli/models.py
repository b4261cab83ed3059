"""``tailor models list``: custom models on a running Tailor server, through its API (boto3)."""

from __future__ import annotations

import typer

from tailor.cli.client import EndpointOption, api_errors, bedrock_client

models_app = typer.Typer(no_args_is_help=True, help="Custom models on a Tailor server.")


@models_app.command("list")
def models_list(endpoint: EndpointOption = None) -> None:
    """List custom models: name, status, ARN."""
    with api_errors(endpoint):
        for page in bedrock_client(endpoint).get_paginator("list_custom_models").paginate():
            for model in page["modelSummaries"]:
                typer.echo(f"{model['modelName']}\t{model.get('modelStatus', '')}\t{model['modelArn']}")
