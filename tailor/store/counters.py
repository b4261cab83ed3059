"""Counters that any process adds to and ``/metrics`` reads (docs/metrics.md).

A job worker is a process of its own, on this machine or a Ray node, and no Prometheus scrape
reaches it; what it counts (grader calls and failures, tokens trained) is added here instead, so
every API server reports the same totals.

``add`` is one statement, atomic on SQLite and PostgreSQL alike: an insert that becomes
``value = value + n`` when the row exists (``INSERT ... ON CONFLICT DO UPDATE``), so two processes
adding at once, even to a counter that does not exist yet, never lose an addition.
"""

from __future__ import annotations

import logging
import re
import threading

from sqlalchemy import Float, String, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, database_url, make_engine

log = logging.getLogger(__name__)

# The counters there are, with their meaning: /metrics shows each as ``tailor_NAME_total``. A fixed
# set, so that a typo fails at once rather than starting a series no dashboard reads.
COUNTERS = {
    "grader_calls": "Grader calls (one batch of samples each), by grader kind, from every process that grades.",
    "grader_samples": "Samples graded, by grader kind.",
    "grader_failures": "Samples a grader could not grade (scored 0 with an error), by grader kind.",
    "training_tokens": "Tokens trained on by customization jobs' workers (every attempt), by customization type.",
}
# Label names and values stay plain words: they are stored joined in one column, and no caller's
# text (a model name, a principal) belongs in a label anyway.
_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


class Counter(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    labels: Mapped[str] = mapped_column(String(512), primary_key=True)  # k="v" pairs, sorted, comma-separated
    value: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


def encode_labels(labels: dict[str, str]) -> str:
    for key, value in labels.items():
        if not _LABEL.fullmatch(key) or not _LABEL.fullmatch(str(value)):
            raise ValueError(f"counter label {key}={value!r}: names and values are words of [A-Za-z0-9_.:-]")
    return ",".join(f'{key}="{labels[key]}"' for key in sorted(labels))


def decode_labels(text: str) -> dict[str, str]:
    pairs = (pair.split("=", 1) for pair in text.split(",") if pair)
    return {key: value.strip('"') for key, value in pairs}


def add(bind: Engine | Connection, increments: dict[str, float], **labels: str) -> None:
    """Add each ``{name: n}`` of ``increments`` to its counter with ``labels`` (created at ``n`` if
    new); each addition is atomic. On an engine: in a transaction of its own; on a connection: in
    the connection's transaction (with what else it writes, e.g. a job's progress)."""
    unknown = [name for name in increments if name not in COUNTERS]
    if unknown:
        raise ValueError(f"unknown counter {unknown[0]!r}; known: {', '.join(COUNTERS)}")
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    encoded = encode_labels(labels)

    def execute(connection: Connection) -> None:
        for name, n in increments.items():
            statement = insert(Counter).values(name=name, labels=encoded, value=float(n))
            statement = statement.on_conflict_do_update(
                index_elements=[Counter.name, Counter.labels], set_={"value": Counter.value + statement.excluded.value})
            connection.execute(statement)

    if isinstance(bind, Connection):
        execute(bind)
    else:
        with bind.begin() as connection:
            execute(connection)


def read(engine: Engine) -> list[tuple[str, dict[str, str], float]]:
    """Every counter: ``(name, labels, value)``, sorted by name and labels."""
    with engine.connect() as connection:
        rows = connection.execute(select(Counter.name, Counter.labels, Counter.value)
                                  .order_by(Counter.name, Counter.labels)).all()
    return [(name, decode_labels(labels), value) for name, labels, value in rows]


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def count(settings, increments: dict[str, float], **labels: str) -> None:
    """``add`` for a process that has settings but no store open (a job worker grading a batch):
    one engine per database per process, opened on first use without migrating (the server that
    created the job did). Counting never fails the work it counts: a database error is logged."""
    url = database_url(settings.home, settings.database_url)
    if settings.database_url is None and not (settings.home / "tailor.db").exists():
        return  # no server has ever run on this home (a bare CLI run): nothing to count into, no file to create
    try:
        with _engines_lock:
            engine = _engines.get(url)
            if engine is None:
                engine = _engines[url] = make_engine(url)
        add(engine, increments, **labels)
    except SQLAlchemyError as error:  # the database busy or gone: the count is lost, the work goes on
        log.warning("could not add to counters %s: %s", ", ".join(increments), error)
