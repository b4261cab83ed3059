"""Registered RFT graders (``tailor.graders.registry``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, UTCDateTime


class Grader(Base):
    """A registered RFT grader (``tailor.graders.registry``): a Python file's source, run like an AWS
    Lambda function, or an HTTP endpoint. Installation-wide, like Lambda functions in one account."""

    __tablename__ = "graders"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(256), unique=True)  # arn:aws:lambda:{region}:{account}:function:{name}
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # python | http
    code: Mapped[str | None] = mapped_column(Text)  # python: the file's source
    url: Mapped[str | None] = mapped_column(String(2048))  # http: where batches are POSTed
    environment: Mapped[dict] = mapped_column(JSON, default=dict)  # python: extra environment variables
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
