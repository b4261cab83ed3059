"""What grading one sample comes to, and what a grading carries along.

``_Outcome`` is one grader's verdict on one sample (reward, error flags and their details, a multi
grader's member scores); ``_Context`` is the settings, the judges and the log every grader type
is graded with; ``Judges`` opens a judge model by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tailor.settings import Settings


@dataclass
class _Outcome:
    """One grader's verdict on one sample."""

    reward: float = 0.0
    flags: set[str] = field(default_factory=set)
    details: dict[str, str] = field(default_factory=dict)  # error flag -> what happened
    scores: dict[str, float] = field(default_factory=dict)  # a multi grader's members
    sampled: bool = False  # a judge model was asked
    reply: str | None = None  # a judge model's last reply: its reasoning, shown beside the score

    def error(self) -> str | None:
        if not self.flags:
            return None
        return "; ".join(self.details.get(flag, flag.replace("_", " ")) for flag in sorted(self.flags))


def _failure(flag: str, message: str) -> _Outcome:
    return _Outcome(0.0, {flag}, {flag: message})


Judges = Callable[[str], Any]  # model name -> a tailor.evaluate.backends.Backend


@dataclass
class _Context:
    settings: Settings
    judges: Judges | None
    log: Callable[[str], None] | None
