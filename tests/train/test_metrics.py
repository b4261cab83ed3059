"""The one metrics writer: the original's columns per method, rows readable as they come, numbers
written exactly, and the plots."""

from __future__ import annotations

import csv

from tailor.train.metrics import (
    HELD_OUT_REWARD_COLUMNS,
    LOSS_COLUMNS,
    REWARD_COLUMNS,
    VALIDATION_LOSS_COLUMNS,
    MetricsWriter,
    loss_row,
    perplexity,
    plot_losses,
    plot_rewards,
    validation_loss_row,
)
from tailor.trained import LOSS_PLOT, REWARD_PLOT, TRAINING_METRICS, VALIDATION_METRICS


def rows(path) -> list[dict]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_supervised_files_have_the_original_columns_and_exact_numbers(tmp_path):
    loss = 0.1 + 0.2  # not representable in six decimals
    with MetricsWriter(tmp_path, LOSS_COLUMNS, VALIDATION_LOSS_COLUMNS) as metrics:
        metrics.training(loss_row(0, 1, loss))
        assert float(rows(tmp_path / TRAINING_METRICS)[0]["training_loss"]) == loss  # flushed, before close
        metrics.validation(validation_loss_row(0, 1, 60.0))
    written = rows(tmp_path / VALIDATION_METRICS)
    assert list(written[0]) == list(VALIDATION_LOSS_COLUMNS)
    assert float(written[0]["perplexity"]) == perplexity(60.0) == perplexity(50.0)  # capped, never overflows
    assert list(rows(tmp_path / TRAINING_METRICS)[0]) == list(LOSS_COLUMNS)
    plot_losses(metrics, tmp_path / LOSS_PLOT)
    assert (tmp_path / LOSS_PLOT).stat().st_size > 0


def test_a_run_without_held_out_data_writes_no_validation_file(tmp_path):
    with MetricsWriter(tmp_path, LOSS_COLUMNS, None) as metrics:
        metrics.training(loss_row(0, 1, 1.0))
    assert metrics.last == loss_row(0, 1, 1.0)
    assert not (tmp_path / VALIDATION_METRICS).exists()


def test_reward_files_keep_the_original_names(tmp_path):
    with MetricsWriter(tmp_path, REWARD_COLUMNS, HELD_OUT_REWARD_COLUMNS) as metrics:
        assert metrics.last == {}
        metrics.training({"step": 1, "epoch": 1, "critic/rewards/mean": 0.5, "critic/rewards/max": 1.0,
                          "critic/rewards/min": 0.0, "actor/pg_loss": 0.1, "actor/kl_loss": None,
                          "actor/entropy": 2.0, "actor/grad_norm": 0.3, "response_length/mean": 5.0,
                          "grader/error_count": 0})
        metrics.validation({"step": 0, "epoch": 0, "val-score/rewards/mean@1": 0.25, "grader/error_count": 1})
    training = rows(tmp_path / TRAINING_METRICS)
    assert list(training[0]) == list(REWARD_COLUMNS) and training[0]["actor/kl_loss"] == ""  # TRL logged none
    assert rows(tmp_path / VALIDATION_METRICS)[0]["val-score/rewards/mean@1"] == "0.25"
    plot_rewards(metrics, tmp_path / REWARD_PLOT)
    assert (tmp_path / REWARD_PLOT).stat().st_size > 0
