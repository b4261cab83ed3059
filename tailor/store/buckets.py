"""Who owns which bucket, and what the operator granted others (``tailor.services.buckets``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, UTCDateTime


class Bucket(Base):
    """A bucket and the principal it belongs to (``tailor.services.buckets``): its owner reads and
    writes it; others only what the operator granted them in ``bucket_grants``."""

    __tablename__ = "buckets"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BucketGrant(Base):
    """Access to another principal's bucket, granted by the operator: ``read`` or ``write``
    (which includes read)."""

    __tablename__ = "bucket_grants"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    principal: Mapped[str] = mapped_column(String(256), primary_key=True)
    access: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
