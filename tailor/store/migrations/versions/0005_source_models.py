"""Iterative customization: the custom model a job (and the custom model it makes) was trained from.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    for table in ("jobs", "custom_models"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("source_model_arn", sa.String(1011), nullable=True))


def downgrade() -> None:
    for table in ("jobs", "custom_models"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("source_model_arn")
