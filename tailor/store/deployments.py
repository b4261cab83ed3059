"""Provisioned throughputs and on-demand custom model deployments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tailor.store.db import Base, UTCDateTime


class Deployment(Base):
    """A provisioned throughput (kind "provisioned") or an on-demand custom model deployment
    (kind "on_demand"): one table, since both serve one model under one ARN.

    ``model_arn`` is what it serves now and ``desired_model_arn`` what it should serve; they differ
    while a model is being loaded. ``tailor.services.deployments`` documents the statuses.
    """

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    arn: Mapped[str] = mapped_column(String(1011), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # provisioned | on_demand
    name: Mapped[str] = mapped_column(String(63))
    principal: Mapped[str] = mapped_column(String(256))
    model_arn: Mapped[str] = mapped_column(String(1011))
    desired_model_arn: Mapped[str] = mapped_column(String(1011))
    foundation_model_arn: Mapped[str] = mapped_column(String(1011))
    model_units: Mapped[int | None] = mapped_column(Integer)  # provisioned only
    desired_model_units: Mapped[int | None] = mapped_column(Integer)
    commitment_duration: Mapped[str | None] = mapped_column(String(16))  # OneMonth | SixMonths
    commitment_expiration: Mapped[datetime | None] = mapped_column(UTCDateTime)
    description: Mapped[str | None] = mapped_column(String(2048))
    # provisioned: Creating | InService | Updating | Failed; on_demand: Creating | Active | Failed
    status: Mapped[str] = mapped_column(String(16), index=True)
    # on_demand only, after a model change: Updating | UpdateCompleted | UpdateFailed
    update_status: Mapped[str | None] = mapped_column(String(16))
    failure_message: Mapped[str | None] = mapped_column(Text)
    client_request_token: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_modified_at: Mapped[datetime] = mapped_column(UTCDateTime)
