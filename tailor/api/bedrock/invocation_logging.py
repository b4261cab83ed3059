"""Put, Get and DeleteModelInvocationLoggingConfiguration: each principal's logging configuration.

The request arrives checked against botocore's ``LoggingConfig`` shape; ``services.invocation_logging``
checks the destination bucket and keeps the configuration (docs/invocation-logging.md).
"""

from __future__ import annotations

from tailor.services import invocation_logging


def _get(caller, params: dict) -> dict:
    config = invocation_logging.get_config(caller.store, caller.principal)
    return {"loggingConfig": config} if config is not None else {}


OPERATIONS: dict = {
    "PutModelInvocationLoggingConfiguration": lambda c, p: invocation_logging.put_config(
        c.store, c.settings, c.principal, p["loggingConfig"]) or {},
    "GetModelInvocationLoggingConfiguration": _get,
    "DeleteModelInvocationLoggingConfiguration":
        lambda c, p: invocation_logging.delete_config(c.store, c.principal) or {},
}
