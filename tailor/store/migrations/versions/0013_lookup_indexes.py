"""Indexes for what every create looks up, so that a create costs the same at 100,000 stored jobs as at 10
(bench/api_latency.py; docs/performance.md):

- a caller's unfinished jobs, the per-caller quota (``services/records.unfinished``:
  ``principal = ? AND end_time IS NULL``), which walked every job the caller ever had (78 ms on
  SQLite, 126 ms on PostgreSQL at 100,000 jobs; 0.5 and 0.8 ms with the index);
- a caller's job and custom model by name (the name must be new): SQLite, with no statistics,
  searched the (principal, created_at) index over every job of the caller rather than the name's.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"

JOB_TABLES = ("jobs", "evaluation_jobs", "eval_runs", "invocation_jobs", "import_jobs", "export_jobs")
BY_NAME = ("jobs", "custom_models")


def upgrade() -> None:
    for table in JOB_TABLES:
        op.create_index(f"ix_{table}_principal_end", table, ["principal", "end_time"])
    for table in BY_NAME:
        op.create_index(f"ix_{table}_principal_name", table, ["principal", "name"])


def downgrade() -> None:
    for table in BY_NAME:
        op.drop_index(f"ix_{table}_principal_name", table_name=table)
    for table in JOB_TABLES:
        op.drop_index(f"ix_{table}_principal_end", table_name=table)
