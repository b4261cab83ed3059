"""What every kind of resource shares: finding the caller's own, listing a page, creating once.

Every lookup is scoped to the calling principal: another principal's resource is reported as not
found, exactly like one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tailor.errors import NotFound, TailorError
from tailor.store.db import Store, page, utcnow
from tailor.store.tags import Tag


def find_owned(session: Session, table, principal: str, identifier: str, what: str):
    """A row of ``table`` by ARN or name, owned by ``principal``; another's is as good as missing."""
    column = table.arn if identifier.startswith("arn:") else table.name
    row = session.scalar(select(table).where(column == identifier, table.principal == principal))
    if row is None:
        raise NotFound(f"{what} {identifier} not found.")
    return row


def common_filters(table, principal: str, query: Mapping) -> list:
    """The filters every List operation shares: owner, name substring, creation time window."""
    conditions = [table.principal == principal]
    if query.get("nameContains"):
        conditions.append(table.name.contains(query["nameContains"], autoescape=True))
    if query.get("creationTimeAfter"):
        conditions.append(table.created_at > query["creationTimeAfter"])
    if query.get("creationTimeBefore"):
        conditions.append(table.created_at < query["creationTimeBefore"])
    return conditions


def list_page(session: Session, table, conditions: list, query: Mapping):
    """One page, newest first unless sortOrder=Ascending; 100 rows unless maxResults says otherwise."""
    return page(session, table, conditions, descending=query.get("sortOrder", "Descending") == "Descending",
                limit=query.get("maxResults") or 100, token=query.get("nextToken"))


def made_with_token(table, principal: str, token: str | None) -> Callable[[Session], str | None]:
    """``insert_once``'s ``earlier`` for a table with an idempotency token column: the ARN of the
    row a request with ``token`` already made, if any."""

    def earlier(session: Session) -> str | None:
        if not token:
            return None
        return session.scalar(select(table.arn).where(table.principal == principal,
                                                      table.client_request_token == token))

    return earlier


def insert_once(store: Store, row, *, tags: Mapping[str, str], earlier: Callable[[Session], str | None],
                taken: Callable[[Session], TailorError | None]) -> str:
    """Add ``row`` and its tags, unless a request with the same idempotency token already made one;
    return the ARN of the resource the request names.

    ``earlier`` finds the ARN a request with this token made; ``taken`` says why the row cannot be
    added (a name in use). Unique indexes settle races between two concurrent requests: the
    second with the same token gets the first one's ARN, the second with the same name the error.
    """
    try:
        with store.session() as session:
            if arn := earlier(session):
                return arn  # a retried request: the same resource, no error
            if error := taken(session):
                # Reads here need not share one snapshot (SQLite begins a transaction at the first
                # write), so the name may have been taken by this request's own first try since.
                if arn := earlier(session):
                    return arn
                raise error
            session.add(row)
            session.flush()  # the row before its tags
            for key, value in tags.items():
                session.add(Tag(resource_arn=row.arn, key=key, value=value))
    except IntegrityError:
        with store.session() as session:
            if arn := earlier(session):
                return arn
            error = taken(session)
        if error is None:
            raise
        raise error from None
    return row.arn


@dataclass(frozen=True)
class Page:
    rows: list
    has_more: bool


# ---------------------------------------------------------------------------------------------
# OpenAI's cursor pages: after an id


def after_page(session, table, conditions: list, *, after: str | None, descending: bool, limit: int,
               column: str = "created_at") -> Page:
    """One page of ``table`` rows ordered by (``column``, id), starting after the row whose id is
    ``after`` (OpenAI's cursor: the last id of the previous page); an unknown cursor is an empty page."""
    time = getattr(table, column)
    order = (time.desc(), table.id.desc()) if descending else (time, table.id)
    query = select(table).where(*conditions)
    if after is not None:
        anchor = session.scalar(select(table).where(table.id == after, *conditions))
        if anchor is None:
            return Page([], False)
        at, row_id = getattr(anchor, column), anchor.id
        if descending:
            query = query.where((time < at) | ((time == at) & (table.id < row_id)))
        else:
            query = query.where((time > at) | ((time == at) & (table.id > row_id)))
    rows = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    for row in rows:
        session.expunge(row)
    return Page(rows[:limit], len(rows) > limit)


def retried(session: Session, table, principal: str, token_prefix: str, within: timedelta):
    """The caller's newest row of ``table`` whose idempotency token starts with ``token_prefix``,
    created within ``within``: what a retried request (the same body, sent again by a client's
    retry) made; None if none."""
    return session.scalar(select(table).where(
        table.principal == principal, table.client_request_token.startswith(token_prefix, autoescape=True),
        table.created_at >= utcnow() - within).order_by(table.created_at.desc()).limit(1))


def unfinished(store: Store, table, principal: str) -> int:
    """How many of the caller's jobs of ``table`` have not ended (queued, running, paused)."""
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(table).where(table.principal == principal,
                                                                            table.end_time.is_(None)))
