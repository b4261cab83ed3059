"""Initial schema: jobs, custom models, tags, access keys.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(1011), nullable=False, unique=True),
        sa.Column("name", sa.String(63), nullable=False, index=True),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("phase", sa.String(16), nullable=False, index=True),
        sa.Column("customization_type", sa.String(32), nullable=False),
        sa.Column("base_model_id", sa.String(256), nullable=False),
        sa.Column("base_model_arn", sa.String(1011), nullable=False),
        sa.Column("output_model_name", sa.String(63), nullable=False),
        sa.Column("output_model_arn", sa.String(1011)),
        sa.Column("role_arn", sa.String(2048), nullable=False),
        sa.Column("client_request_token", sa.String(256)),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("status_details", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("failure_message", sa.Text),
        sa.Column("training_loss", sa.Float),
        sa.Column("validation_losses", sa.JSON, nullable=False),
        sa.Column("pid", sa.Integer),
        sa.Column("pid_started", sa.String(32)),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("work_dir", sa.String(4096), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_modified_at", sa.DateTime, nullable=False),
        sa.Column("end_time", sa.DateTime),
    )
    # Listing a principal's jobs newest first, page by page, is the hot query.
    op.create_index("ix_jobs_principal_created", "jobs", ["principal", "created_at", "id"])
    op.create_index("ix_jobs_principal_token", "jobs", ["principal", "client_request_token"], unique=True)
    op.create_table(
        "custom_models",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(1011), nullable=False, unique=True),
        sa.Column("name", sa.String(63), nullable=False, index=True),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("job_id", sa.String(12)),
        sa.Column("base_model_id", sa.String(256), nullable=False),
        sa.Column("base_model_arn", sa.String(1011), nullable=False),
        sa.Column("customization_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure_message", sa.Text),
        sa.Column("artifacts_dir", sa.String(4096), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_custom_models_principal_created", "custom_models", ["principal", "created_at", "id"])
    op.create_table(
        "tags",
        sa.Column("resource_arn", sa.String(1011), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String(32), primary_key=True),
        sa.Column("encrypted_secret", sa.Text, nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("access_keys", "tags", "custom_models", "jobs"):
        op.drop_table(table)
