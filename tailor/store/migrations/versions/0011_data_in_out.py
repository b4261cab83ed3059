"""Data and weights in and out (``tailor.store.data_in_out``): invocation logging configurations,
batch inference jobs, model import jobs and imported models, model exports.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def _lifecycle() -> list[sa.Column]:
    """The columns every runner-driven job has (``tailor.store.jobs.JobLifecycle``)."""
    return [
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(1011), nullable=False, unique=True),
        sa.Column("name", sa.String(63), nullable=False, index=True),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("phase", sa.String(16), nullable=False, index=True),
        sa.Column("role_arn", sa.String(2048), nullable=False),
        sa.Column("client_request_token", sa.String(256)),
        sa.Column("failure_message", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("pid_started", sa.String(32)),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("work_dir", sa.String(4096), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_modified_at", sa.DateTime, nullable=False),
        sa.Column("end_time", sa.DateTime),
    ]


def upgrade() -> None:
    op.create_table(
        "invocation_logging",
        sa.Column("principal", sa.String(256), primary_key=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "invocation_jobs", *_lifecycle(),
        sa.Column("model_id", sa.String(2048), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("openai", sa.JSON),
        sa.Column("timeout_hours", sa.Integer),
        sa.Column("message", sa.Text),
    )
    op.create_table(
        "import_jobs", *_lifecycle(),
        sa.Column("model_name", sa.String(63), nullable=False, index=True),
        sa.Column("model_arn", sa.String(1011)),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_table(
        "imported_models",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(1011), nullable=False, unique=True),
        sa.Column("name", sa.String(63), nullable=False, index=True),
        sa.Column("principal", sa.String(256), nullable=False, index=True),
        sa.Column("job_id", sa.String(12)),
        sa.Column("job_arn", sa.String(1011)),
        sa.Column("architecture", sa.String(64), nullable=False),
        sa.Column("artifacts_dir", sa.String(4096), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "export_jobs", *_lifecycle(),
        sa.Column("model_arn", sa.String(1011), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    for table in ("export_jobs", "imported_models", "import_jobs", "invocation_jobs", "invocation_logging"):
        op.drop_table(table)
