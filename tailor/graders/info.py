"""A registered grader as a value: what a job snapshots when it is created and grades with later.

Detached from the database on purpose: a job keeps the grader it was created with (its code or
URL, limits and environment), so changing or deleting the registered grader afterwards changes
no queued or running job.

Kind ``openai`` is a grader a caller of OpenAI's fine-tuning API described inline
(``method.reinforcement.grader``): ``definition`` holds it, normalized, as JSON
(``tailor.graders.openai``); nothing is registered for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

GraderKind = Literal["python", "http", "openai"]


@dataclass(frozen=True)
class GraderInfo:
    id: str
    arn: str
    name: str
    kind: GraderKind
    code: str | None  # python: the file's source
    url: str | None  # http: where batches are POSTed
    timeout_seconds: int
    memory_mb: int
    created_at: datetime
    environment: dict[str, str] = field(default_factory=dict)
    definition: dict[str, Any] | None = None  # openai: the grader object, normalized

    def summary(self) -> dict:
        """The grader as JSON, without its code."""
        summary = {"name": self.name, "arn": self.arn, "kind": self.kind, "url": self.url,
                   "timeoutSeconds": self.timeout_seconds, "memoryMb": self.memory_mb,
                   "environment": sorted(self.environment), "createdAt": self.created_at.isoformat()}
        if self.definition is not None:
            summary["graderType"] = self.definition.get("type")
        return summary
