"""Model import through boto3 against a real server: CreateModelImportJob of a small Llama 3 folder
(sharded safetensors) → Completed → the imported model answers by its ARN exactly as transformers'
greedy generate does on the same folder, and trains further; CreateCustomModel → Active → deployed
→ answers the same; what a folder lacks is refused naming the file; an architecture Tailor does not
serve fails with the reason; another principal reaches nothing of it; DeleteImportedModel."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.api.conftest import ALIASES, running_server
from tests.conftest import tiny_home

ROLE = "arn:aws:iam::000000000000:role/Import"
BUCKET = "alice-models"
LLAMA = f"s3://{BUCKET}/llama3-small"
MESSAGES = [{"role": "user", "content": "What are your opening hours?"}]
MAX_TOKENS = 12


def error_of(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_models_dir):
    home = tiny_home(tmp_path_factory.mktemp("import") / "home", tiny_models_dir)
    with running_server(home, ALIASES) as running:
        yield running


def _place(server, uri: str, files: dict[str, bytes] | None = None, source=None, principal: str = "alice"):
    """Files into a local bucket folder owned by ``principal`` (as ``tailor data upload`` does)."""
    from tailor.services.buckets import prepare_upload
    from tailor.settings import Settings
    from tailor.store.db import open_store

    settings = Settings(home=server.home)
    prepare_upload(open_store(settings), settings, principal, uri + "/config.json")
    folder = server.home / "buckets" / uri.removeprefix("s3://")
    if source is not None:
        shutil.copytree(source, folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        (folder / name).write_bytes(content)
    return folder


@pytest.fixture(scope="module")
def llama(server, tmp_path_factory):
    """A small random Llama 3 (tailor.architectures), saved in three safetensors shards with their
    index, in alice's bucket; and transformers' greedy answer to MESSAGES on that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tailor.architectures import build_small

    built = build_small("llama3", tmp_path_factory.mktemp("llama") / "model", seed=3)
    model = AutoModelForCausalLM.from_pretrained(built)
    sharded = tmp_path_factory.mktemp("sharded") / "model"
    model.save_pretrained(sharded, max_shard_size="300KB")
    for path in built.iterdir():
        if not path.name.endswith(".safetensors"):
            shutil.copy(path, sharded / path.name)
    folder = _place(server, LLAMA, source=sharded)
    assert (folder / "model.safetensors.index.json").is_file()

    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    output = AutoModelForCausalLM.from_pretrained(folder).generate(**prompt, max_new_tokens=MAX_TOKENS,
                                                                   do_sample=False)
    expected = tokenizer.decode(output[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    return folder, expected


def _wait_import(bedrock, arn: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = bedrock.get_model_import_job(jobIdentifier=arn)
        if job["status"] != "InProgress":
            return job
        time.sleep(0.3)
    raise AssertionError(f"import still running after {timeout}s: {job}")


def _wait_model(bedrock, arn: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = bedrock.get_custom_model(modelIdentifier=arn)
        if model["modelStatus"] != "Creating":
            return model
        time.sleep(0.3)
    raise AssertionError(f"custom model still Creating after {timeout}s")


GPT2 = f"s3://{BUCKET}/gpt2"


@pytest.fixture(scope="module")
def queued(server, llama) -> dict:
    """Every import the module makes, queued at once so that the runner works through them while
    the first tests talk to the engine: the Llama folder (CreateModelImportJob), the same folder
    as a custom model (CreateCustomModel) and a GPT-2 folder (an architecture Tailor does not serve)."""
    bedrock = server.client()
    created = bedrock.create_model_import_job(
        jobName="llama-import", importedModelName="llama-small", roleArn=ROLE,
        modelDataSource={"s3DataSource": {"s3Uri": LLAMA}}, clientRequestToken="import-1",
        jobTags=[{"key": "team", "value": "faq"}], importedModelTags=[{"key": "kind", "value": "llama"}])
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    custom = bedrock.create_custom_model(modelName="llama-custom", roleArn=ROLE,
                                         modelSourceConfig={"s3DataSource": {"s3Uri": LLAMA}},
                                         modelTags=[{"key": "kind", "value": "custom"}])
    assert custom["ResponseMetadata"]["HTTPStatusCode"] == 202
    gpt2 = {"config.json": json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}).encode(),
            "model.safetensors": b"not read", "tokenizer.json": b"{}", "tokenizer_config.json": b"{}"}
    _place(server, GPT2, gpt2)
    unsupported = bedrock.create_model_import_job(jobName="gpt2-import", importedModelName="gpt2", roleArn=ROLE,
                                                  modelDataSource={"s3DataSource": {"s3Uri": GPT2}})
    unsupported_custom = bedrock.create_custom_model(modelName="gpt2-custom",
                                                     modelSourceConfig={"s3DataSource": {"s3Uri": GPT2}})
    return {"import": created["jobArn"], "custom": custom["modelArn"], "gpt2": unsupported["jobArn"],
            "gpt2-custom": unsupported_custom["modelArn"]}


@pytest.fixture(scope="module")
def imported(server, queued) -> str:
    """The Llama folder imported by alice (CreateModelImportJob → Completed); its model's ARN."""
    bedrock = server.client()
    created = {"jobArn": queued["import"]}
    again = bedrock.create_model_import_job(  # a retried request: the same job
        jobName="llama-import", importedModelName="llama-small", roleArn=ROLE,
        modelDataSource={"s3DataSource": {"s3Uri": LLAMA}}, clientRequestToken="import-1")
    assert again["jobArn"] == created["jobArn"]
    job = _wait_import(bedrock, created["jobArn"])
    assert job["status"] == "Completed", job.get("failureMessage")
    assert job["importedModelName"] == "llama-small" and job["modelDataSource"]["s3DataSource"]["s3Uri"] == LLAMA
    assert job["endTime"] >= job["creationTime"]
    return job["importedModelArn"]


def test_import_lists_and_describes(server, imported):
    bedrock = server.client()
    model = bedrock.get_imported_model(modelIdentifier=imported)
    assert model["modelArn"] == imported and model["modelName"] == "llama-small"
    assert model["modelArchitecture"] == "llama3" and model["instructSupported"] is True
    assert model["jobName"] == "llama-import" and "modelKmsKeyArn" not in model
    assert model["customModelUnits"] == {"customModelUnitsPerModelCopy": 1, "customModelUnitsVersion": "v1.0"}
    assert bedrock.get_imported_model(modelIdentifier="llama-small")["modelArn"] == imported  # by name too

    listed = bedrock.list_imported_models(nameContains="llama")["modelSummaries"]
    assert [(m["modelArn"], m["modelArchitecture"]) for m in listed] == [(imported, "llama3")]
    assert bedrock.list_imported_models(nameContains="nothing-like-it")["modelSummaries"] == []
    jobs = bedrock.list_model_import_jobs(statusEquals="Completed", sortOrder="Ascending")["modelImportJobSummaries"]
    assert [(j["jobName"], j["importedModelArn"]) for j in jobs] == [("llama-import", imported)]
    assert bedrock.list_model_import_jobs(statusEquals="Failed", nameContains="llama")["modelImportJobSummaries"] == []


def test_imported_model_answers_by_arn_as_transformers_does(server, imported, llama):
    _, expected = llama
    runtime = server.client("bedrock-runtime")
    question = [{"role": "user", "content": [{"text": MESSAGES[0]["content"]}]}]
    converse = runtime.converse(modelId=imported, messages=question,
                                inferenceConfig={"maxTokens": MAX_TOKENS, "temperature": 0})
    assert converse["output"]["message"]["content"][0]["text"] == expected
    body = json.dumps({"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0})
    invoked = json.loads(runtime.invoke_model(modelId=imported, body=body)["body"].read())
    assert invoked["choices"][0]["message"]["content"] == expected
    chat = server.openai().chat.completions.create(model=imported, messages=MESSAGES, max_tokens=MAX_TOKENS,
                                                   temperature=0)
    assert chat.choices[0].message.content == expected
    assert imported in [model.id for model in server.openai().models.list()]


def test_another_principal_reaches_nothing(server, imported):
    bob = server.client(principal="bob")
    assert error_of(lambda: bob.get_imported_model(modelIdentifier=imported))[0] == "ResourceNotFoundException"
    assert bob.list_imported_models()["modelSummaries"] == []
    assert bob.list_model_import_jobs()["modelImportJobSummaries"] == []
    code, _ = error_of(lambda: server.client("bedrock-runtime", principal="bob").converse(
        modelId=imported, messages=[{"role": "user", "content": [{"text": "hi"}]}]))
    assert code == "ResourceNotFoundException"
    code, message = error_of(lambda: bob.create_model_import_job(
        jobName="steal", importedModelName="stolen", roleArn=ROLE, modelDataSource={"s3DataSource": {"s3Uri": LLAMA}}))
    assert code == "AccessDeniedException" and "modelDataSource.s3DataSource.s3Uri" in message
    assert error_of(lambda: bob.delete_imported_model(modelIdentifier=imported))[0] == "ResourceNotFoundException"


def test_a_folder_missing_a_file_is_refused_naming_it(server, llama):
    folder, _ = llama
    bedrock = server.client()
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    no_config = {name: data for name, data in files.items() if name != "config.json"}
    _place(server, f"s3://{BUCKET}/no-config", no_config)
    no_weights = {name: data for name, data in files.items() if not name.endswith(".safetensors")}
    _place(server, f"s3://{BUCKET}/no-weights", {**no_weights, "pytorch_model.bin": b"pickle"})
    one_shard = dict(files)
    del one_shard[sorted(name for name in files if name.endswith(".safetensors"))[1]]
    _place(server, f"s3://{BUCKET}/one-shard-missing", one_shard)
    for key, missing in (("no-config", "config.json"), ("no-weights", "*.safetensors"),
                         ("one-shard-missing", "model-00002-of-00003.safetensors"), ("nothing-here", "no files")):
        code, message = error_of(lambda: bedrock.create_model_import_job(
            jobName=f"bad-{key}", importedModelName=f"bad-{key}", roleArn=ROLE,
            modelDataSource={"s3DataSource": {"s3Uri": f"s3://{BUCKET}/{key}"}}))
        assert code == "ValidationException" and missing in message, message
        assert "modelDataSource.s3DataSource.s3Uri" in message
    code, message = error_of(lambda: bedrock.create_model_import_job(
        jobName="kms", importedModelName="kms", roleArn=ROLE, modelDataSource={"s3DataSource": {"s3Uri": LLAMA}},
        importedModelKmsKeyId="alias/mine"))
    assert code == "ValidationException" and "importedModelKmsKeyId" in message
    code, _ = error_of(lambda: bedrock.create_model_import_job(  # the name is taken by the imported model
        jobName="again", importedModelName="llama-small", roleArn=ROLE,
        modelDataSource={"s3DataSource": {"s3Uri": LLAMA}}))
    assert code == "ConflictException"
    assert bedrock.list_model_import_jobs(nameContains="bad")["modelImportJobSummaries"] == []  # nothing queued


def test_an_architecture_tailor_does_not_serve_fails_with_the_reason(server, queued):
    bedrock = server.client()
    job = _wait_import(bedrock, queued["gpt2"])
    assert job["status"] == "Failed" and "gpt2" in job["failureMessage"] and "llama" in job["failureMessage"]
    assert "importedModelArn" not in job
    assert bedrock.list_imported_models(nameContains="gpt2")["modelSummaries"] == []
    failed = bedrock.list_model_import_jobs(statusEquals="Failed")["modelImportJobSummaries"]
    assert [j["jobName"] for j in failed] == ["gpt2-import"]
    custom = _wait_model(bedrock, queued["gpt2-custom"])  # CreateCustomModel's model fails with the reason
    assert custom["modelStatus"] == "Failed" and "gpt2" in custom["failureMessage"]
    listed = bedrock.list_custom_models(modelStatus="Failed")["modelSummaries"]
    assert [(m["modelName"], m["baseModelName"]) for m in listed] == [("gpt2-custom", "imported.pending")]


def test_create_custom_model_deploys_and_answers(server, llama, queued):
    _, expected = llama
    bedrock = server.client()
    arn = queued["custom"]
    assert arn.startswith("arn:aws:bedrock:us-east-1:000000000000:custom-model/imported/")
    model = _wait_model(bedrock, arn)
    assert model["modelStatus"] == "Active", model.get("failureMessage")
    assert model["customizationType"] == "IMPORTED"
    summary = bedrock.list_custom_models(nameContains="llama-custom")["modelSummaries"]
    assert [(m["modelArn"], m["modelStatus"], m["baseModelName"]) for m in summary] == [
        (arn, "Active", "imported.llama3")]
    assert bedrock.list_model_import_jobs(nameContains="create-custom-model")["modelImportJobSummaries"] == []

    deployment = bedrock.create_custom_model_deployment(modelDeploymentName="llama-od", modelArn=arn)
    deployment_arn = deployment["customModelDeploymentArn"]
    deadline = time.monotonic() + 120
    while bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=deployment_arn)["status"] != "Active":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    answer = server.client("bedrock-runtime").converse(
        modelId=deployment_arn, messages=[{"role": "user", "content": [{"text": MESSAGES[0]["content"]}]}],
        inferenceConfig={"maxTokens": MAX_TOKENS, "temperature": 0})
    assert answer["output"]["message"]["content"][0]["text"] == expected

    _place(server, f"s3://{BUCKET}/empty-model", {"config.json": b"{}"})
    code, message = error_of(lambda: bedrock.create_custom_model(
        modelName="empty", modelSourceConfig={"s3DataSource": {"s3Uri": f"s3://{BUCKET}/empty-model"}}))
    assert code == "ValidationException" and "modelSourceConfig.s3DataSource.s3Uri" in message
    assert "tokenizer_config.json" in message and "*.safetensors" in message


def test_the_imported_model_trains_further_and_is_deleted_last(server, imported):
    bedrock = server.client()
    train = server.put(f"s3://{BUCKET}/faq/train.jsonl",
                       [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(8)])
    job_arn = bedrock.create_model_customization_job(
        jobName="llama-more", customModelName="llama-more", roleArn=ROLE, baseModelIdentifier=imported,
        hyperParameters={"epochCount": "1", "batchSize": "8"}, trainingDataConfig={"s3Uri": train},
        outputDataConfig={"s3Uri": f"s3://{BUCKET}/faq/out"})["jobArn"]
    job = server.wait_for(job_arn, {"Completed", "Failed"})
    assert job["status"] == "Completed", job.get("failureMessage")

    code, message = error_of(lambda: bedrock.delete_imported_model(modelIdentifier=imported))
    assert code == "ConflictException" and "llama-more" in message  # a custom model starts from its weights
    bedrock.delete_custom_model(modelIdentifier=job["outputModelArn"])
    folder = _artifacts(server, imported)
    assert (folder / "manifest.json").is_file() and (folder / "model" / "config.json").is_file()
    bedrock.delete_imported_model(modelIdentifier=imported)
    assert not folder.exists()  # its weights went with it
    assert error_of(lambda: bedrock.get_imported_model(modelIdentifier=imported))[0] == "ResourceNotFoundException"
    code, _ = error_of(lambda: server.client("bedrock-runtime").converse(
        modelId=imported, messages=[{"role": "user", "content": [{"text": "hi"}]}]))
    assert code == "ResourceNotFoundException"


def _artifacts(server, arn: str) -> Path:
    from sqlalchemy import select

    from tailor.settings import Settings
    from tailor.store.data_in_out import ImportedModel
    from tailor.store.db import open_store

    with open_store(Settings(home=server.home)).session() as session:
        return Path(session.scalar(select(ImportedModel.artifacts_dir).where(ImportedModel.arn == arn)))


def test_the_worker_checks_shapes_and_supplies_a_missing_chat_template(llama, tmp_path):
    """The job's checks on a copied folder, in process: shapes against config.json; a base
    checkpoint without a chat template gets its family's."""
    from tailor.architectures import ARCHITECTURES
    from tailor.errors import InvalidInput
    from tailor.jobs.model_import import check_folder

    folder, _ = llama
    narrower = shutil.copytree(folder, tmp_path / "narrower")
    config = json.loads((narrower / "config.json").read_text())
    (narrower / "config.json").write_text(json.dumps({**config, "intermediate_size": 96}))
    with pytest.raises(InvalidInput, match=r"shapes do not match config.json: model.layers.0.mlp.\w+_proj.weight"):
        check_folder(narrower)

    base = shutil.copytree(folder, tmp_path / "base")
    (base / "chat_template.jinja").unlink()
    assert check_folder(base)["chat_template"] == "architecture"
    assert (base / "chat_template.jinja").read_text() == ARCHITECTURES["llama3"].chat_template
