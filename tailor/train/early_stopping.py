"""Early stopping as the original service defines it, with the checkpoint it keeps.

An evaluation *improves* when ``best - current >= threshold``; otherwise a stall counter grows,
and an improvement resets it. Training stops when the counter reaches ``patience``. ``best`` is
the lowest loss seen, whether or not its drop counted as an improvement, and the checkpoint kept
is the one with that loss. (docs/training.md works an example through.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class EarlyStopping:
    threshold: float
    patience: int
    best: float = math.inf
    best_epoch: int | None = None
    stalls: int = 0

    def update(self, epoch: int, loss: float) -> bool:
        """Record an evaluation; True when training should stop."""
        improved = self.best - loss >= self.threshold
        if loss < self.best:
            self.best, self.best_epoch = loss, epoch
        self.stalls = 0 if improved else self.stalls + 1
        return self.stalls >= self.patience
