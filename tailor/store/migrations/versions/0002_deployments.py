"""Deployments: provisioned throughputs and on-demand custom model deployments, one table.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(1011), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("model_arn", sa.String(1011), nullable=False),
        sa.Column("desired_model_arn", sa.String(1011), nullable=False),
        sa.Column("foundation_model_arn", sa.String(1011), nullable=False),
        sa.Column("model_units", sa.Integer),
        sa.Column("desired_model_units", sa.Integer),
        sa.Column("commitment_duration", sa.String(16)),
        sa.Column("commitment_expiration", sa.DateTime),
        sa.Column("description", sa.String(2048)),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("update_status", sa.String(16)),
        sa.Column("failure_message", sa.Text),
        sa.Column("client_request_token", sa.String(256)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_modified_at", sa.DateTime, nullable=False),
    )
    # Listing a principal's deployments of one kind, newest first, page by page.
    op.create_index("ix_deployments_principal_kind_created", "deployments",
                    ["principal", "kind", "created_at", "id"])
    # The database, not a check-then-insert race, keeps names and idempotency tokens unique.
    op.create_index("ix_deployments_principal_kind_name", "deployments", ["principal", "kind", "name"],
                    unique=True)
    op.create_index("ix_deployments_principal_kind_token", "deployments",
                    ["principal", "kind", "client_request_token"], unique=True)


def downgrade() -> None:
    op.drop_table("deployments")
