"""RFT graders (tailor.graders.registry): Python files run like Lambda functions, or HTTP endpoints.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "graders",
        sa.Column("id", sa.String(12), primary_key=True),
        sa.Column("arn", sa.String(256), nullable=False, unique=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("code", sa.Text),
        sa.Column("url", sa.String(2048)),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("timeout_seconds", sa.Integer, nullable=False),
        sa.Column("memory_mb", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("graders")
