"""A model import job's work, in its worker process: copy a Hugging Face folder out of its bucket,
check it with the libraries that will load it, and publish it as a trained folder of full weights.

The copy goes into the job's folder (``WORK_DIR/output``, published whole by ``trained.building``:
a failed or killed import leaves nothing, and the runner removes what a dead worker left). Then,
on the copy — the bytes that will be served, not the bucket's, which may change meanwhile:

- config.json's ``model_type`` is one of a family Tailor serves and trains
  (``tailor.architectures``), and its ``architectures`` name that family's transformers class;
- every tensor the config implies is in the safetensors files with the shape the config gives
  (the model is built on the meta device from the config; each file's tensors are read by
  ``safetensors``' header, every shard an index names), and no file holds a tensor the model
  does not have;
- the tokenizer loads (``AutoTokenizer``), fits the embeddings, and has a chat template — the
  folder's own, or its family's, written beside it when the folder has none (a base checkpoint);
  generation stops on the family's end-of-turn tokens (added to generation_config.json when
  missing).

The manifest says: full weights of ``imported.{family}``, from these files; so
``services.inference`` serves it as a fine-tuned model's full weights, and ``catalog.resolve_model``
starts training from it. Any failure ends the job Failed with the reason; a CreateCustomModel
model then becomes Failed with the same message.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from tailor import storage, trained
from tailor.architectures import Architecture, for_model_type, served_model_types
from tailor.errors import InvalidInput
from tailor.evaluate.run import StopRequested
from tailor.jobs.ending import Stop, run_to_end
from tailor.settings import Settings
from tailor.store.data_in_out import ImportedModel, ImportJob
from tailor.store.db import Store, utcnow
from tailor.store.jobs import CustomModel
from tailor.store.tags import Tag

# What an import makes (its spec's "kind"): an imported model, or CreateCustomModel's custom model.
IMPORTED_KIND = "imported"
CUSTOM_KIND = "custom-model"
INDEX = "model.safetensors.index.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# One custom model unit per started 16 GB of weights: Tailor's own measure (the original's units
# are sized by its hardware); a model copy's memory is dominated by its weights.
BYTES_PER_MODEL_UNIT = 16_000_000_000
MODEL_UNITS_VERSION = "v1.0"


def family_id(architecture: str) -> str:
    """The base model id an imported model of ``architecture`` carries (its manifest's, and its
    custom model row's): ``imported.llama3``, ``imported.qwen2-5``; it fits every ARN pattern that
    embeds a model id."""
    return "imported." + architecture.replace(".", "-").replace("_", "-")


def model_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / BYTES_PER_MODEL_UNIT))


def run_job(store: Store, settings: Settings, job_id: str, stop: Stop) -> str:
    """Run the import job ``job_id``; its final status."""
    with store.session() as session:
        job = session.get(ImportJob, job_id)
        if job is None or job.status != "InProgress":
            return job.status if job else "missing"
        session.expunge(job)
    status = run_to_end(store, settings, ImportJob, job_id, lambda: _import(store, settings, job, stop),
                        "The model import")
    if job.spec["kind"] == CUSTOM_KIND and status != "Completed":
        with store.session() as session:
            failed = session.get(ImportJob, job_id)
            model = session.get(CustomModel, job.spec["model_id"])
            if model is not None and model.status == "Creating":
                model.status, model.failure_message = "Failed", failed.failure_message or f"The import {status}."
    return status


def _import(store: Store, settings: Settings, job: ImportJob, stop: Stop) -> None:
    spec = job.spec
    started_at, started = datetime.now(UTC), time.perf_counter()
    out = (Path(job.work_dir) / "output").resolve()
    with trained.building(out) as scratch:
        model_dir = scratch / trained.MODEL_DIR
        model_dir.mkdir()
        size = _copy(settings, spec, model_dir, stop)
        details = check_folder(model_dir)
        details.update(size_bytes=size, source=spec["source_uri"])
        trained.write_manifest(scratch, _manifest(out, details, spec, started_at, started))
    _record(store, job, out, details)


def _copy(settings: Settings, spec: dict, model_dir: Path, stop: Stop) -> int:
    """Copy the folder's files (as listed when the job was created) into ``model_dir``; their bytes."""
    bucket, key = storage.bucket_of(spec["source_uri"])
    prefix = key.rstrip("/") + "/" if key.strip("/") else ""
    total = 0
    for name, _ in spec["files"]:
        if stop():
            raise StopRequested("The import was stopped.")
        uri = f"s3://{bucket}/{prefix}{name}"
        try:
            source = storage.local_path(uri, settings)
        except Exception as error:  # gone since the job was created, or the store failed
            raise InvalidInput(f"{name}: cannot be read from {uri} ({getattr(error, 'message', error)}).") from None
        total += source.stat().st_size
        if total > spec["max_bytes"]:
            raise InvalidInput(f"The model folder {spec['source_uri']} now holds more than {spec['max_bytes']:,} "
                               "bytes, this server's limit (TAILOR_IMPORT_MAX_BYTES).")
        shutil.copyfile(source, model_dir / name)
    return total


# ---------------------------------------------------------------------------------------------
# The checks that need the model libraries


def check_folder(model_dir: Path) -> dict:
    """Check a copied Hugging Face folder (see the module's docstring); what it holds, for the
    imported model's details. ``InvalidInput`` says what is wrong, naming the file."""
    config = _json(model_dir / "config.json")
    model_type = config.get("model_type")
    declared = [str(name) for name in config.get("architectures") or []]
    if model_type not in served_model_types():
        raise InvalidInput(
            f"config.json: model_type {model_type!r} ({', '.join(declared) or 'no architectures'}) is not an "
            f"architecture Tailor serves and trains; it imports Llama 3, Qwen 2.5 / 3, Mistral, Gemma 2 / 3 and "
            f"Phi-3 / 4 models (model_type {', '.join(served_model_types())}).")
    tokenizer = _tokenizer(model_dir)
    vocabulary = tokenizer.get_vocab()
    architecture = for_model_type(model_type, vocabulary)
    if declared and architecture.model_class not in declared:
        raise InvalidInput(f"config.json: architectures {', '.join(declared)}; Tailor loads {model_type} models as "
                           f"{architecture.model_class} (text only).")
    loaded_config = _config(model_dir)
    parameters = _check_weights(model_dir, loaded_config)
    text_config = loaded_config.get_text_config() if hasattr(loaded_config, "get_text_config") else loaded_config
    if len(tokenizer) > text_config.vocab_size:
        raise InvalidInput(f"tokenizer: it has {len(tokenizer)} tokens, but the model's embeddings hold "
                           f"{text_config.vocab_size} (config.json vocab_size).")
    template = "folder"
    if not tokenizer.chat_template:
        if architecture.end_of_turn not in vocabulary:
            raise InvalidInput(f"tokenizer_config.json: the tokenizer has no chat template, and no "
                               f"{architecture.end_of_turn!r} token for the {architecture.name} chat format: "
                               "add the model's chat template (chat_template.jinja or tokenizer_config.json).")
        (model_dir / CHAT_TEMPLATE_FILE).write_text(architecture.chat_template)
        template = "architecture"
    _add_stops(model_dir, loaded_config, architecture, vocabulary)
    return {"architecture": architecture.name, "model_type": model_type, "model_class": architecture.model_class,
            "parameters": parameters, "chat_template": template, "instruct_supported": True}


def _json(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path.name}: cannot be read as JSON ({error}).") from None
    if not isinstance(content, dict):
        raise InvalidInput(f"{path.name}: expected a JSON object.")
    return content


def _tokenizer(model_dir: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_dir)
    except Exception as error:  # transformers raises many kinds for a broken tokenizer
        raise InvalidInput(f"tokenizer: it does not load ({type(error).__name__}: {error}).") from None


def _config(model_dir: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_dir)
    except Exception as error:
        raise InvalidInput(f"config.json: transformers cannot read it ({type(error).__name__}: {error}).") from None


def _check_weights(model_dir: Path, config) -> int:
    """Every tensor the model built from ``config`` has, with its shape, in the safetensors files;
    the number of parameters they hold."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
    except Exception as error:
        raise InvalidInput(f"config.json: no model can be built from it ({type(error).__name__}: {error}).") from None
    expected = {name: tuple(tensor.shape) for name, tensor in skeleton.state_dict().items()}
    index = _json(model_dir / INDEX).get("weight_map", {}) if (model_dir / INDEX).is_file() else None
    files = sorted(set(index.values())) if index is not None else sorted(
        path.name for path in model_dir.glob("*.safetensors"))
    found: dict[str, tuple[int, ...]] = {}
    for name in files:
        try:
            with safe_open(model_dir / name, framework="pt") as weights:
                for key in weights.keys():
                    found[key] = tuple(weights.get_slice(key).get_shape())
                    if index is not None and index.get(key, name) != name:
                        raise InvalidInput(f"{INDEX}: names {index[key]} for {key}, but it is in {name}.")
        except InvalidInput:
            raise
        except Exception as error:
            raise InvalidInput(f"{name}: not a readable safetensors file ({type(error).__name__}: {error}).") from None
    if index is not None:
        absent = sorted(key for key, name in index.items() if key not in found)
        if absent:
            raise InvalidInput(f"{INDEX}: names tensors that are not in their files ({_few(absent)}).")
    tied = {"lm_head.weight"} if getattr(config.get_text_config() if hasattr(config, "get_text_config") else config,
                                         "tie_word_embeddings", False) else set()
    missing = sorted(set(expected) - set(found) - tied)
    if missing:
        raise InvalidInput(f"safetensors: the weights lack {len(missing)} tensor(s) the config.json model has "
                           f"({_few(missing)}).")
    wrong = [f"{key} is {list(found[key])}, the config gives {list(shape)}" for key, shape in expected.items()
             if key in found and found[key] != shape]
    if wrong:
        raise InvalidInput(f"safetensors: shapes do not match config.json: {'; '.join(wrong[:3])}"
                           + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else "") + ".")
    extra = sorted(key for key in set(found) - set(expected) if not key.endswith("rotary_emb.inv_freq"))
    if extra:
        raise InvalidInput(f"safetensors: the weights hold {len(extra)} tensor(s) the config.json model does not "
                           f"have ({_few(extra)}): is config.json this model's?")
    return sum(math.prod(shape) for shape in found.values())


def _few(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f", … {len(names) - 5} more" if len(names) > 5 else "")


def _add_stops(model_dir: Path, config, architecture: Architecture, vocabulary: dict) -> None:
    """Make generation stop on the family's stop tokens (a base checkpoint's generation config
    names only its end of text; the chat template ends each answer with its end of turn)."""
    from transformers import GenerationConfig

    try:
        generation = GenerationConfig.from_pretrained(model_dir)
    except OSError:
        generation = GenerationConfig.from_model_config(config)
    configured = generation.eos_token_id
    ids = [configured] if isinstance(configured, int) else list(configured or [])
    missing = [vocabulary[token] for token in architecture.stop_tokens
               if token in vocabulary and vocabulary[token] not in ids]
    if missing or not (model_dir / "generation_config.json").is_file():
        ids += missing
        generation.eos_token_id = ids if len(ids) > 1 else (ids[0] if ids else None)
        generation.save_pretrained(model_dir)


# ---------------------------------------------------------------------------------------------
# Publishing


def _manifest(out: Path, details: dict, spec: dict, started_at: datetime, started: float) -> dict:
    """A trained folder's manifest: full weights of ``imported.{family}`` at ``out/model``."""
    from tailor.catalog import (
        FAMILIES,
        HF_FULL_LEARNING_RATE,
        HF_LORA_LEARNING_RATE,
        ResolvedModel,
        Weights,
    )

    family = FAMILIES["tailor"]
    weights = Weights("local", str(out / trained.MODEL_DIR), HF_FULL_LEARNING_RATE, HF_LORA_LEARNING_RATE, "lora")
    model_ref = ResolvedModel(family_id(details["architecture"]), family, weights, tuple(family.formats))
    note = (f"Imported from {spec['source_uri']}: {details['architecture']} ({details['model_class']}), "
            f"{details['parameters']:,} parameters; chat template from the {details['chat_template']}.")
    return trained.manifest(
        customization_type="IMPORTED", model_ref=model_ref, tuning_method="full",
        data={"source": spec["source_uri"], "files": [name for name, _ in spec["files"]]}, notes=(note,),
        hyperparameters={}, learning_rate=0.0, seed=0, started_at=started_at, started=started,
        result={"imported": details})


def _record(store: Store, job: ImportJob, out: Path, details: dict) -> None:
    """The imported model's row (CreateModelImportJob), or the custom model made Active
    (CreateCustomModel), in one transaction with the job's details."""
    spec = job.spec
    with store.session() as session:
        row = session.get(ImportJob, job.id)
        row.details = details
        if spec["kind"] == CUSTOM_KIND:
            model = session.get(CustomModel, spec["model_id"])
            if model is None:
                raise InvalidInput("The custom model was deleted while it was being created.")
            model.status, model.base_model_id = "Active", family_id(details["architecture"])
            return
        taken = session.query(ImportedModel.id).filter(ImportedModel.principal == job.principal,
                                                       ImportedModel.name == job.model_name).first()
        if taken is not None:
            raise InvalidInput(f"importedModelName: a model named {job.model_name} was imported meanwhile.")
        session.add(ImportedModel(
            id=spec["model_id"], arn=spec["model_arn"], name=job.model_name, principal=job.principal, job_id=job.id,
            job_arn=job.arn, architecture=details["architecture"], artifacts_dir=str(out),
            size_bytes=details["size_bytes"], details={**details, "job_name": job.name}, created_at=utcnow()))
        session.flush()
        for key, value in spec.get("model_tags") or []:
            session.add(Tag(resource_arn=spec["model_arn"], key=key, value=value))
        row.model_arn = spec["model_arn"]
