"""Beyond one machine (docs/scaling.md): where each job's worker runs, and counters every process adds to.

- On every job table: ``executor`` (``local`` or ``ray``: what started the current attempt),
  ``executor_ref`` (the executor's own name for it, e.g. Ray's submission id) and ``host`` (the
  machine a local worker runs on: only a server on that machine can judge its pid).
- ``counters``: monotonic totals written by any process — job workers included, which no
  ``/metrics`` scrape reaches — and read by ``/metrics`` (grader calls and failures, trained tokens).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"

JOB_TABLES = ("jobs", "evaluation_jobs", "eval_runs", "invocation_jobs", "import_jobs", "export_jobs")


def upgrade() -> None:
    for table in JOB_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("executor", sa.String(16)))
            batch.add_column(sa.Column("executor_ref", sa.String(128)))
            batch.add_column(sa.Column("host", sa.String(255)))
    op.create_table(
        "counters",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("labels", sa.String(512), primary_key=True),
        sa.Column("value", sa.Float, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("counters")
    for table in JOB_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("host")
            batch.drop_column("executor_ref")
            batch.drop_column("executor")
