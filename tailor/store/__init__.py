"""Tailor's database: ``db`` (engine, migrations, sessions, pages) and one module per kind of record.

Importing the package registers every table with ``db.Base.metadata`` (the schema test compares it
with the migrated schema).
"""

from tailor.store import (  # noqa: F401
    buckets,
    counters,
    data_in_out,
    deployments,
    evals,
    files,
    graders,
    jobs,
    keys,
    tags,
)
