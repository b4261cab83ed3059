"""Progress for long work: a rich progress bar on a terminal, plain log lines everywhere else.

Jobs run in child processes whose output goes to a log file, and CI has no terminal; both get a
line every ~10 % of the work instead of a bar, so a log always shows that training is alive.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class _Progress:
    def __init__(self, description: str, total: int, bar=None, task=None):
        self.description = description
        self.total = max(1, total)
        self.done = 0
        self._bar = bar
        self._task = task
        self._started = time.perf_counter()
        self._next_line = 0.1

    def advance(self, steps: int = 1, **metrics: float) -> None:
        self.done += steps
        shown = "  ".join(f"{name} {value:.4g}" for name, value in metrics.items())
        if self._bar is not None:
            self._bar.update(self._task, advance=steps, metrics=shown)
        elif self.done / self.total >= self._next_line or self.done == self.total:
            elapsed = time.perf_counter() - self._started
            print(f"{self.description}: {self.done}/{self.total} ({elapsed:.1f}s) {shown}",
                  file=sys.stderr, flush=True)
            self._next_line = self.done / self.total + 0.1

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[_Progress]:
    """Yield an object with ``advance(steps=1, **metrics)`` and ``note(text)``."""
    if not enabled:
        progress = _Progress(description, total)
        progress.advance = lambda steps=1, **metrics: None  # type: ignore[method-assign]
        progress.note = lambda text: None  # type: ignore[method-assign]
        yield progress
        return
    if not sys.stderr.isatty():
        yield _Progress(description, total)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
        console=Console(stderr=True), transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total, metrics="")
        yield _Progress(description, total, bar, task)
