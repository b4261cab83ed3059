"""Access keys: each maps a key id to its principal and the secret, encrypted (``tailor.secrets``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, UTCDateTime


class AccessKey(Base):
    __tablename__ = "access_keys"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    encrypted_secret: Mapped[str] = mapped_column(Text)
    principal: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
