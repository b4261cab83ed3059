"""Tags on any resource, by ARN."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base


class Tag(Base):
    __tablename__ = "tags"

    resource_arn: Mapped[str] = mapped_column(String(1011), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))  # Bedrock allows 256; OpenAI metadata 512
