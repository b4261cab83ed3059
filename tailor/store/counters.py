"""Counters that any process adds to and ``/metrics`` reads (docs/metrics.md).

A job worker is a process of its own, on this machine or a Ray node, and no Prometheus scrape
reaches it; what it counts (grader calls and failures, tokens trained) is added here instead, so
every API server reports the same totals.
"""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base


class Counter(Base):
    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    labels: Mapped[str] = mapped_column(String(512), primary_key=True)  # k="v" pairs, sorted, comma-separated
    value: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
