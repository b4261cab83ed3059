"""Early stopping reproduces the worked example of docs/training.md exactly."""

import pytest

from tailor.train.early_stopping import EarlyStopping

LOSSES = [0.9, 0.8, 0.7, 0.66, 0.64, 0.65, 0.65]


def run(threshold: float, patience: int) -> tuple[int, int, float]:
    stopper = EarlyStopping(threshold=threshold, patience=patience)
    for epoch, loss in enumerate(LOSSES, start=1):
        if stopper.update(epoch, loss):
            return epoch, stopper.best_epoch, stopper.best
    return len(LOSSES), stopper.best_epoch, stopper.best


@pytest.mark.parametrize(
    ("threshold", "patience", "stops_after", "best_epoch", "best_loss"),
    [(0.0, 2, 7, 5, 0.64), (0.05, 1, 4, 4, 0.66)],
)
def test_spec_table(threshold, patience, stops_after, best_epoch, best_loss):
    assert run(threshold, patience) == (stops_after, best_epoch, best_loss)


def test_improvement_resets_the_stall_counter():
    stopper = EarlyStopping(threshold=0.0, patience=2)
    assert not stopper.update(1, 1.0)
    assert not stopper.update(2, 1.1)  # one stall
    assert not stopper.update(3, 0.9)  # improvement: counter back to 0
    assert not stopper.update(4, 0.95)
    assert stopper.update(5, 0.95)
    assert stopper.best_epoch == 3
