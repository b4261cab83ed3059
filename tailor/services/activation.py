"""Deployments come alive here: load each new (or updated) deployment's model, then mark it serving.

A loop in the API server polls the store for deployments that are Creating or Updating, asks the
engine to load their model (base and adapter), and records the outcome with
``deployments.mark_loaded``: InService / Active, or Failed with the reason. Polling the store (not
remembering work in memory) means a restarted server picks up whatever was left half-done.
"""

from __future__ import annotations

import asyncio
import logging

from tailor.serve.client import EngineClient
from tailor.services import deployments, inference

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5


async def activate(store, settings, engine: EngineClient, deployment_id: str, model_arn: str) -> None:
    error = None
    try:
        target, _ = await asyncio.to_thread(inference.target_for_model, store, settings, None, model_arn)
        await engine.load(target)
    except Exception as failure:  # whatever went wrong is the deployment's failure message
        error = getattr(failure, "message", None) or str(failure) or type(failure).__name__
        log.warning("deployment %s could not load %s: %s", deployment_id, model_arn, error)
    await asyncio.to_thread(deployments.mark_loaded, store, deployment_id, model_arn, error)


async def run(store, settings, engine: EngineClient) -> None:
    running: dict[tuple[str, str], asyncio.Task] = {}
    while True:
        try:
            pending = await asyncio.to_thread(deployments.pending_activations, store)
            for key in pending:
                if key not in running or running[key].done():
                    running[key] = asyncio.create_task(activate(store, settings, engine, *key))
            for key in [k for k, task in running.items() if task.done() and k not in pending]:
                del running[key]
        except Exception:  # a database hiccup must not end activation for good
            log.exception("deployment activation poll failed")
        await asyncio.sleep(POLL_SECONDS)
