"""The trained folder's contract: published whole or not at all, metrics readable while a run
trains, and one reading of the manifest for every reader. Pure file work, no model."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tailor import trained
from tailor.catalog import base_of, resolve_model
from tailor.errors import InvalidInput
from tailor.settings import Settings
from tailor.train.metrics import (
    ACCURACY_COLUMNS,
    LOSS_COLUMNS,
    VALIDATION_ACCURACY_COLUMNS,
    VALIDATION_LOSS_COLUMNS,
    MetricsWriter,
    loss_row,
    validation_loss_row,
)


def test_a_finished_build_is_published_and_its_scratch_is_gone(tmp_path):
    out = tmp_path / "run"
    with trained.building(out) as scratch:
        assert scratch.parent == tmp_path and trained.PARTIAL in scratch.name
        assert trained.in_progress(out) == scratch
        (scratch / "weights").write_text("w")
        assert not out.exists()  # nothing at the destination until the build is whole
    assert (out / "weights").read_text() == "w"
    assert trained.in_progress(out) is None


def test_a_failed_build_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), trained.building(out) as scratch:
        (scratch / "weights").write_text("half")
        raise RuntimeError("the run crashed")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_build_refuses_an_output_folder_that_holds_something(tmp_path):
    (tmp_path / "run").mkdir()
    with trained.building(tmp_path / "run") as scratch:  # an empty folder is fine
        (scratch / "manifest.json").write_text("{}")
    with pytest.raises(InvalidInput, match="already exists and is not empty"), trained.building(tmp_path / "run"):
        pass


def test_metrics_are_read_from_the_scratch_while_training_then_from_the_published_folder(tmp_path):
    out = tmp_path / "run"
    assert trained.read_metrics(out) == trained.RunMetrics()
    with trained.building(out) as scratch, MetricsWriter(scratch, LOSS_COLUMNS, None) as metrics:
        metrics.training(loss_row(0, 1, 2.5))
        live = trained.read_metrics(out)  # the file is still open: rows are flushed as they come
        assert [row["step_number"] for row in live.training] == ["0"] and live.validation == []
        assert live.training_written >= time.time() - 60 and live.validation_written == 0.0
        metrics.training(loss_row(1, 1, 2.0))
    published = trained.read_metrics(out)
    assert [float(row["training_loss"]) for row in published.training] == [2.5, 2.0]


def test_extra_measures_go_beside_the_original_files_and_read_back_merged(tmp_path):
    """Mean token accuracy has no column in the original's files: it goes to a Tailor-only companion
    file, and ``read_metrics`` returns every row with its companion's values."""
    out = tmp_path / "run"
    with trained.building(out) as scratch, MetricsWriter(scratch, LOSS_COLUMNS, VALIDATION_LOSS_COLUMNS,
                                                         extra_training_columns=ACCURACY_COLUMNS,
                                                         extra_validation_columns=VALIDATION_ACCURACY_COLUMNS) as m:
        m.training(loss_row(0, 1, 2.5, 0.25))
        m.training(loss_row(1, 1, 2.0))  # a row replayed from a resume state of an older version
        m.validation(validation_loss_row(1, 1, 2.2, 0.5))
        live = trained.read_metrics(out)
        assert live.training[0]["train_mean_token_accuracy"] == "0.25"
    assert (out / trained.TRAINING_METRICS).read_text().splitlines()[0] == ",".join(LOSS_COLUMNS)
    assert (out / trained.VALIDATION_METRICS).read_text().splitlines()[0] == ",".join(VALIDATION_LOSS_COLUMNS)
    metrics = trained.read_metrics(out)
    assert metrics.training == [
        {"step_number": "0", "epoch_number": "1", "training_loss": "2.5", "perplexity": str(loss_row(0, 1, 2.5)[
            "perplexity"]), "train_mean_token_accuracy": "0.25"},
        {"step_number": "1", "epoch_number": "1", "training_loss": "2.0",
         "perplexity": str(loss_row(1, 1, 2.0)["perplexity"])}]
    assert metrics.validation[0]["valid_mean_token_accuracy"] == "0.5"
    assert m.training_rows[0]["train_mean_token_accuracy"] == 0.25  # kept whole for the resume state


def test_a_writer_without_companion_files_leaves_their_values_out_and_refuses_unknown_ones(tmp_path):
    with MetricsWriter(tmp_path, LOSS_COLUMNS, None) as metrics:  # e.g. a benchmark's
        metrics.training(loss_row(0, 1, 2.5, 0.25))
        with pytest.raises(ValueError, match="not in fieldnames"):
            metrics.training({**loss_row(1, 1, 2.0), "training_los": 2.0})
    assert (tmp_path / trained.TRAINING_METRICS).read_text().splitlines()[0] == ",".join(LOSS_COLUMNS)
    assert not (tmp_path / trained.TRAINING_EXTRA_METRICS).exists()


def test_a_companion_row_not_yet_written_leaves_the_row_as_it_is(tmp_path):
    rows = [{"step_number": "0", "epoch_number": "1", "training_loss": "1"},
            {"step_number": "1", "epoch_number": "1", "training_loss": "0.5"}]
    extra = [{"step_number": "0", "epoch_number": "1", "train_mean_token_accuracy": "0.5"}]
    assert trained._merged(rows, extra) == [{**rows[0], "train_mean_token_accuracy": "0.5"}, rows[1]]
    assert trained._merged(rows, []) == rows


def test_epoch_checkpoints_are_listed_oldest_first_once_published(tmp_path):
    settings = Settings(home=tmp_path / "home")
    folder = tmp_path / "run"
    _write(folder, resolve_model("tailor.tiny", settings), "lora")
    for step, epoch in ((19, 2), (9, 1)):
        path = trained.checkpoint_folder(folder, step)
        (path / "model").mkdir(parents=True)
        trained.write_checkpoint_info(path, step=step, epoch=epoch, metrics={"train_loss": 1.0 / epoch},
                                      created_at=1000 + step)
    (folder / trained.EPOCH_CHECKPOINTS / ".step-29.partial").mkdir()  # a killed run's: never listed
    assert trained.checkpoints(folder) == []  # no manifests yet: the run is not published
    trained.write_checkpoint_manifests(folder, trained.read(folder).manifest)
    listed = trained.checkpoints(folder)
    assert [(c.step, c.epoch, c.created_at, c.metrics) for c in listed] == [
        (9, 1, 1009, {"train_loss": 1.0}), (19, 2, 1019, {"train_loss": 0.5})]
    model = trained.read(listed[0].path)
    assert model.is_adapter and model.model_dir == (listed[0].path / "model").resolve()
    assert model.manifest["checkpoint"]["epoch"] == 1 and model.manifest["result"]["steps"] == 10
    assert base_of(model) == base_of(trained.read(folder)) == "tailor.tiny"
    assert trained.checkpoints(tmp_path / "nothing") == []


def _write(folder, model_ref, tuning_method: str) -> None:
    folder.mkdir()
    content = trained.manifest(customization_type="FINE_TUNING", model_ref=model_ref, tuning_method=tuning_method,
                               data={}, notes=(), hyperparameters={}, learning_rate=1e-3, seed=42,
                               started_at=datetime.now(UTC), started=time.perf_counter(),
                               result={})
    trained.write_manifest(folder, content)


def test_a_manifest_reads_back_as_it_was_written(tmp_path):
    settings = Settings(home=tmp_path / "home")
    _write(tmp_path / "full", resolve_model("tailor.tiny", settings), "full")
    full = trained.read(tmp_path / "full")
    assert trained.is_trained(tmp_path / "full") and not full.is_adapter
    assert full.model_dir == (tmp_path / "full" / "model").resolve() and full.model_dir.is_absolute()
    assert (full.base_model_id, full.family, full.customization_type) == ("tailor.tiny", "tailor", "FINE_TUNING")
    assert base_of(full) == "tailor.tiny"  # the built-in model by its id, not by its cache folder

    weights = tmp_path / "my-model"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    _write(tmp_path / "lora", resolve_model(str(weights), settings), "lora")
    lora = trained.read(tmp_path / "lora")
    assert lora.is_adapter and base_of(lora) == str(weights)


def test_every_reader_of_a_trained_folder_agrees(tmp_path):
    """Serving (``services.inference``) and training from a custom model (the catalog) read the
    same folder; both must find the same weights."""
    from tailor.serve.protocol import Target
    from tailor.services.inference import target_for_artifacts

    settings = Settings(home=tmp_path / "home")
    _write(tmp_path / "lora", resolve_model("tailor.tiny", settings), "lora")
    model = trained.read(tmp_path / "lora")
    assert target_for_artifacts(tmp_path / "lora") == (Target(base="tailor.tiny", adapter=str(model.model_dir)),
                                                       "openai")
    resolved = resolve_model(str(tmp_path / "lora"), settings)
    assert resolved.adapter == str(model.model_dir) and resolved.trained == str(tmp_path / "lora")


def test_an_unreadable_manifest_names_the_folder(tmp_path):
    from tailor.errors import ModelUnavailable
    from tailor.services.inference import target_for_artifacts

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text('{"base_model": {}}')
    with pytest.raises(InvalidInput, match="broken/manifest.json is not a readable Tailor training manifest"):
        trained.read(tmp_path / "broken")
    with pytest.raises(ModelUnavailable, match="artifacts are unreadable: .*broken/manifest.json"):
        target_for_artifacts(tmp_path / "broken")
