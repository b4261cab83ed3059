"""Jobs store the resolved job spec they run, not the request they came from; their workers
record what happens to them, with times, in ``job_events``.

``jobs.spec`` and ``evaluation_jobs.spec`` replace the ``request`` columns (``tailor.jobs.spec``).
Existing rows are converted here with plain dicts (a migration must not depend on application
code that changes later): a customization job's spec comes straight from its request, with a
queued RFT job's grader snapshotted now; an evaluation job that had not ended cannot be resolved
the way a new one is (its models' weights were looked up when it ran), so it is marked Failed with
a message asking to create it again.

Revision ID: 0007
Revises: 0006
"""

import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

UPGRADED = "Tailor was upgraded before this evaluation job ran; create it again."


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(12), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    for table in ("jobs", "evaluation_jobs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("spec", sa.JSON, nullable=True))
    connection = op.get_bind()
    _convert_customization_jobs(connection)
    _convert_evaluation_jobs(connection)
    for table in ("jobs", "evaluation_jobs"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("request")
            batch.alter_column("spec", existing_type=sa.JSON, nullable=False)


def _convert_customization_jobs(connection) -> None:
    rows = connection.execute(sa.text("SELECT id, request, customization_type, base_model_id, source_model_arn, "
                                      "work_dir, status FROM jobs")).mappings().all()
    for row in rows:
        request = _json(row["request"])
        model = row["base_model_id"]
        if row["source_model_arn"]:
            model = connection.execute(sa.text("SELECT artifacts_dir FROM custom_models WHERE arn = :arn"),
                                       {"arn": row["source_model_arn"]}).scalar() or model
        rft = (request.get("customizationConfig") or {}).get("rftConfig") or {}
        arn = ((rft.get("graderConfig") or {}).get("lambdaGrader") or {}).get("lambdaArn")
        spec = {
            "train": {
                "customization_type": row["customization_type"], "model": model,
                "training_uri": request["trainingDataConfig"]["s3Uri"],
                "output_dir": f"{row['work_dir']}/output",
                "validation_uris": [v["s3Uri"] for v in (request.get("validationDataConfig") or {}).get("validators")
                                    or []],
                "hyperparameters": request.get("hyperParameters") or rft.get("hyperParameters") or {},
                "progress": True,
                "grader": _grader(connection, arn) if arn and row["status"] == "InProgress" else None,
            },
            "output_uri": request["outputDataConfig"]["s3Uri"], "vpc": request.get("vpcConfig"),
        }
        connection.execute(sa.text("UPDATE jobs SET spec = :spec WHERE id = :id"),
                           {"spec": json.dumps(spec), "id": row["id"]})


def _grader(connection, arn: str) -> dict | None:
    row = connection.execute(sa.text("SELECT * FROM graders WHERE arn = :arn"), {"arn": arn}).mappings().first()
    if row is None:
        return None
    created = row["created_at"]
    return {"id": row["id"], "arn": row["arn"], "name": row["name"], "kind": row["kind"], "code": row["code"],
            "url": row["url"], "timeout_seconds": row["timeout_seconds"], "memory_mb": row["memory_mb"],
            "created_at": created if isinstance(created, str) else created.isoformat(),
            "environment": _json(row["environment"]) or {}}


def _convert_evaluation_jobs(connection) -> None:
    rows = connection.execute(sa.text("SELECT id, request, status FROM evaluation_jobs")).mappings().all()
    for row in rows:
        request = _json(row["request"])
        automated = request["evaluationConfig"].get("automated") or {}
        evaluators = (automated.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or []
        spec = {
            "evaluation": {
                "datasets": [{"name": c["dataset"]["name"], "task_type": c["taskType"], "metrics": c["metricNames"],
                              "uri": (c["dataset"].get("datasetLocation") or {}).get("s3Uri", "")}
                             for c in automated.get("datasetMetricConfigs") or []],
                "models": [{"identifier": m["bedrockModel"]["modelIdentifier"],
                            "inference_params": m["bedrockModel"].get("inferenceParams")}
                           for m in request["inferenceConfig"].get("models") or [] if "bedrockModel" in m],
                "judge": {"identifier": evaluators[0]["modelIdentifier"]} if evaluators else None,
            },
            "output_uri": request["outputDataConfig"]["s3Uri"], "description": request.get("jobDescription"),
            "encryption_key": request.get("customerEncryptionKeyId"),
        }
        changes = {"spec": json.dumps(spec), "id": row["id"]}
        if row["status"] in ("InProgress", "Stopping"):
            connection.execute(sa.text("UPDATE evaluation_jobs SET status = 'Failed', phase = 'done', "
                                       "failure_message = :message, end_time = :now WHERE id = :id"),
                               {"message": UPGRADED, "now": datetime.now(timezone.utc).replace(tzinfo=None),
                                "id": row["id"]})
        connection.execute(sa.text("UPDATE evaluation_jobs SET spec = :spec WHERE id = :id"), changes)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def downgrade() -> None:
    raise NotImplementedError("Job specs cannot be turned back into the requests they were resolved from.")
