"""Files and uploads of the OpenAI API (``tailor.store.files``); a custom model's OpenAI name
(``ft:{base}:{owner}:{suffix}:{id}``); tag values as long as OpenAI's metadata values (512).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("principal", sa.String(256), nullable=False, index=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False, index=True),
        sa.Column("expires_at", sa.DateTime),
    )
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("principal", sa.String(256), nullable=False, index=True),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("mime_type", sa.String(256), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("file_id", sa.String(40)),
        sa.Column("file_expires_after", sa.Integer),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "upload_parts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("upload_id", sa.String(40), nullable=False, index=True),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    with op.batch_alter_table("custom_models") as batch:
        batch.add_column(sa.Column("openai_name", sa.String(512)))
        batch.create_index("ix_custom_models_openai_name", ["openai_name"])
    with op.batch_alter_table("tags") as batch:
        batch.alter_column("value", type_=sa.String(512))


def downgrade() -> None:
    with op.batch_alter_table("custom_models") as batch:
        batch.drop_index("ix_custom_models_openai_name")
        batch.drop_column("openai_name")
    op.drop_table("upload_parts")
    op.drop_table("uploads")
    op.drop_table("files")
