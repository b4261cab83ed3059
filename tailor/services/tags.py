"""Tags on the caller's resources (jobs of every kind, custom and imported models, deployments), by ARN."""

from __future__ import annotations

from sqlalchemy import select

from tailor.errors import NotFound
from tailor.store.data_in_out import ImportedModel, ImportJob, InvocationJob
from tailor.store.db import Store
from tailor.store.deployments import Deployment
from tailor.store.jobs import CustomModel, EvaluationJob, Job
from tailor.store.tags import Tag


def _owned_arn(session, principal: str, arn: str) -> None:
    owned = any(session.scalar(select(table.id).where(table.arn == arn, table.principal == principal))
                for table in (Job, CustomModel, Deployment, EvaluationJob, InvocationJob, ImportJob, ImportedModel))
    if not owned:
        raise NotFound(f"Resource {arn} not found.")


def tag_resource(store: Store, principal: str, arn: str, tags: list[dict]) -> dict:
    with store.session() as session:
        _owned_arn(session, principal, arn)
        for tag in tags:
            session.merge(Tag(resource_arn=arn, key=tag["key"], value=tag["value"]))
    return {}


def untag_resource(store: Store, principal: str, arn: str, keys: list[str]) -> dict:
    with store.session() as session:
        _owned_arn(session, principal, arn)
        session.execute(Tag.__table__.delete().where(Tag.resource_arn == arn, Tag.key.in_(keys)))
    return {}


def list_tags(store: Store, principal: str, arn: str) -> dict:
    with store.session() as session:
        _owned_arn(session, principal, arn)
        tags = session.scalars(select(Tag).where(Tag.resource_arn == arn).order_by(Tag.key))
        return {"tags": [{"key": t.key, "value": t.value} for t in tags]}
