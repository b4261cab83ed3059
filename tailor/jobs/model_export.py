"""A model export in its worker: the custom model merged and written as the job's spec says
(``tailor.export``), then checked by reading it back; a Hugging Face folder is packed into one tar so
that a link downloads it whole.

The job's ``details`` say where it is while it runs (``stage``: loading, merging, writing, checking,
packing) and, at the end, the file's name and size, every file it holds and the checks that passed;
the file lies in the job's folder under ``output/`` (kept when the job completes, removed when it
fails or stops: ``jobs/runner.py``). A stop is honoured between stages.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tailor.evaluate.run import StopRequested
from tailor.export.hf import Source
from tailor.export.model import export, safe_name, tar_folder
from tailor.jobs.ending import Stop, run_to_end
from tailor.settings import Settings
from tailor.store.data_in_out import ExportJob
from tailor.store.db import Store

OUTPUT = "output"


def run_job(store: Store, settings: Settings, job_id: str, stop: Stop) -> str:
    """Run the export ``job_id``; its final status."""
    with store.session() as session:
        job = session.get(ExportJob, job_id)
        if job is None or job.status != "InProgress":
            return job.status if job else "missing"
        spec, fmt, work_dir = dict(job.spec), job.format, Path(job.work_dir)
    return run_to_end(store, settings, ExportJob, job_id,
                      lambda: _run(store, settings, job_id, spec, fmt, work_dir, stop), "The export")


def _run(store: Store, settings: Settings, job_id: str, spec: dict, fmt: str, work_dir: Path, stop: Stop) -> None:
    name = safe_name(spec.get("model_name") or "model")
    source = Source(base=spec["base"], adapter=spec.get("adapter"), name=name)
    out = work_dir / OUTPUT
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    def progress(note: str) -> None:
        if stop():
            raise StopRequested("The export was stopped.")
        _details(store, job_id, stage=note)

    if fmt == "hf":
        folder = out / f"{name}-hf"
        exported = export(source, "hf", folder, settings, progress=progress)
        progress("packing the folder into one tar")
        file = tar_folder(folder, out / f"{name}-hf.tar", top=f"{name}-hf")
        shutil.rmtree(folder)
    else:
        exported = export(source, "gguf", out / f"{name}.gguf", settings, progress=progress)
        file = exported.path
    if stop():
        raise StopRequested("The export was stopped.")
    _details(store, job_id, stage="done", file=file.name, size_bytes=file.stat().st_size,
             files=exported.files, checks=exported.checks)


def _details(store: Store, job_id: str, **changes) -> None:
    with store.session() as session:
        job = session.get(ExportJob, job_id)
        job.details = {**(job.details or {}), **changes}
