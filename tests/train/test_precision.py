"""Mixed precision done right: float32 master weights and optimizer state always; bfloat16
compute under autocast where the device wants it (exercised here with the CPU's own autocast)."""

from __future__ import annotations

import pytest

from tailor.train.precision import Precision, precision_for


def test_weights_are_float32_wherever_they_are_updated():
    assert precision_for("full", "cpu") == Precision("float32", None)
    assert precision_for("lora", "cpu") == Precision("float32", None)
    assert precision_for("full", "cuda") == Precision("float32", "bfloat16")  # master weights fp32
    assert precision_for("lora", "cuda") == Precision("bfloat16", "bfloat16")  # the frozen base only


@pytest.mark.slow
def test_bfloat16_compute_updates_float32_master_weights_and_learns(home, tmp_path):
    import torch

    from tailor.catalog import resolve_model
    from tailor.data.render import chat_example
    from tailor.settings import get_settings
    from tailor.train.hyperparams import parse_hyperparameters
    from tailor.train.loop import train_loop
    from tailor.train.metrics import LOSS_COLUMNS, MetricsWriter
    from tailor.weights import load_causal_lm, load_tokenizer

    settings = get_settings()
    reference = resolve_model("tailor.tiny", settings)
    tokenizer = load_tokenizer(reference, settings, progress=False)
    model = load_causal_lm(reference, settings, progress=False, dtype=torch.float32)
    data = [chat_example(tokenizer, [{"role": "user", "content": f"Code {i}?"},
                                     {"role": "assistant", "content": f"The code is {i * 3}."}]) for i in range(8)]
    config = parse_hyperparameters({"epochCount": "6", "batchSize": "4", "tuningMethod": "full"}, reference)
    before = [p.detach().clone() for p in model.parameters()]
    with MetricsWriter(tmp_path, LOSS_COLUMNS, None) as metrics:
        result = train_loop(model, data, [], config, pad_id=tokenizer.pad_token_id, metrics=metrics,
                            save_best=lambda: None, progress=False, precision=Precision("float32", "bfloat16"))

    assert all(p.dtype == torch.float32 for p in model.parameters())
    # Updates smaller than bfloat16 could hold were kept: some weights moved by less than
    # 1/256 of their size, which adding in bfloat16 would have rounded away.
    small = [((after - start).abs() / start.abs().clamp_min(1e-12)) for after, start in zip(model.parameters(), before)]
    moved = torch.cat([ratio.flatten() for ratio in small])
    assert ((moved > 0) & (moved < 2 ** -8)).any()
    first = float(metrics.training_rows[0]["training_loss"])
    assert result.final_training_loss < 0.7 * first  # it learns
