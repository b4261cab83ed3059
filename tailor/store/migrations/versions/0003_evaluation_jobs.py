"""Evaluation jobs (CreateEvaluationJob), started by the same runner as customization jobs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "evaluation_jobs",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(1011), nullable=False, unique=True),
        sa.Column("name", sa.String(63), nullable=False, index=True),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("phase", sa.String(16), nullable=False, index=True),
        sa.Column("application_type", sa.String(32), nullable=False),
        sa.Column("role_arn", sa.String(2048), nullable=False),
        sa.Column("client_request_token", sa.String(256)),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("failure_message", sa.Text),
        sa.Column("pid", sa.Integer),
        sa.Column("pid_started", sa.String(32)),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("work_dir", sa.String(4096), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_modified_at", sa.DateTime, nullable=False),
        sa.Column("end_time", sa.DateTime),
    )
    # Listing a principal's jobs newest first, page by page; names are unique per principal.
    op.create_index("ix_evaluation_jobs_principal_created", "evaluation_jobs", ["principal", "created_at", "id"])
    op.create_index("ix_evaluation_jobs_principal_name", "evaluation_jobs", ["principal", "name"], unique=True)
    op.create_index("ix_evaluation_jobs_principal_token", "evaluation_jobs", ["principal", "client_request_token"],
                    unique=True)


def downgrade() -> None:
    op.drop_table("evaluation_jobs")
