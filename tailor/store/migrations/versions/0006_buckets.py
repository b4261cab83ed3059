"""Storage belongs to principals: who owns each bucket, and what the operator granted to others.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "buckets",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "bucket_grants",
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("principal", sa.String(256), primary_key=True),
        sa.Column("access", sa.String(8), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("bucket_grants")
    op.drop_table("buckets")
