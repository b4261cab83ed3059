"""Files a principal uploaded through the OpenAI API (``/v1/files``, ``/v1/uploads``), and the files
Tailor writes for them (a fine-tuning job's results CSV).

A file's bytes live at ``content_path``: under ``$TAILOR_HOME/files/``, named by the file's id, never
by anything the caller chose. The row says whose it is; ``tailor.services.files`` answers only the
owner.
"""

from __future__ import annotations

import secrets
import string
from datetime import datetime
from pathlib import Path

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, UTCDateTime

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """``file-…``, ``upload_…``, ``part_…``: 24 random letters and digits, as OpenAI's ids look."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(24))


class File(Base):
    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # file-…
    principal: Mapped[str] = mapped_column(String(256), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Upload(Base):
    """A file arriving in parts (``/v1/uploads``): pending until completed, cancelled or expired."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # upload_…
    principal: Mapped[str] = mapped_column(String(256), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(512))
    mime_type: Mapped[str] = mapped_column(String(256))
    bytes: Mapped[int] = mapped_column(BigInteger)  # what the caller said it will send
    status: Mapped[str] = mapped_column(String(16))  # pending | completed | cancelled | expired
    file_id: Mapped[str | None] = mapped_column(String(40))
    file_expires_after: Mapped[int | None] = mapped_column(Integer)  # seconds, for the completed file
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UploadPart(Base):
    __tablename__ = "upload_parts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # part_…
    upload_id: Mapped[str] = mapped_column(String(40), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def content_path(home: Path, file_id: str) -> Path:
    """Where file ``file_id``'s bytes are kept (ids are Tailor's own: letters, digits, ``-``)."""
    return home / "files" / file_id


def part_path(home: Path, upload_id: str, part_id: str) -> Path:
    return home / "uploads" / upload_id / part_id


def write_content(path: Path, content: bytes) -> None:
    """``content`` at ``path``, whole or not at all (written beside it, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(content)
    temporary.replace(path)


def add_written_file(store, home: Path, principal: str, *, filename: str, purpose: str, content: bytes) -> str:
    """Keep ``content`` as a file Tailor wrote for ``principal`` (a batch's output or error file):
    its bytes first, then its row, so a listed file always has its bytes. Its id."""
    from tailor.store.db import utcnow

    file_id = new_id("file-")
    write_content(content_path(home, file_id), content)
    with store.session() as session:
        session.add(File(id=file_id, principal=principal, purpose=purpose, filename=filename, bytes=len(content),
                         created_at=utcnow(), expires_at=None))
    return file_id
