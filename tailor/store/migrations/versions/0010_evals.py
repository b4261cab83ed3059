"""The OpenAI Evals API: evals, their runs (jobs the runner starts) and the runs' output items.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.create_table(
        "evals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("principal", sa.String(256), nullable=False, index=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("data_source_config", sa.JSON, nullable=False),
        sa.Column("testing_criteria", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
    )
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(1011), nullable=False, unique=True),
        sa.Column("name", sa.String(512), nullable=False),
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
        sa.Column("eval_id", sa.String(40), nullable=False, index=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("data_source", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON),
        sa.Column("results", sa.JSON, nullable=False),
    )
    op.create_table(
        "eval_output_items",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(12), nullable=False, index=True),
        sa.Column("datasource_item_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(8), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("eval_output_items")
    op.drop_table("eval_runs")
    op.drop_table("evals")
