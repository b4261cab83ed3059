"""One export, either format: what ``tailor models export`` and an export job run.

A GGUF file is made from the merged Hugging Face folder (``export.hf``), written first into a
scratch folder beside the output and removed afterwards, so the two formats share one merge and
GGUF is converted from exactly what the ``hf`` format would have given.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from tailor.catalog import resolve_model
from tailor.errors import InvalidInput
from tailor.export import gguf as gguf_export
from tailor.export.hf import Exported, Progress, Source, export_hf
from tailor.settings import Settings
from tailor.weights import load_config

FORMATS = ("hf", "gguf")


def export(source: Source, fmt: str, out: Path, settings: Settings, *, tensor_type: str = "f16",
           progress: Progress = lambda note: None) -> Exported:
    """Export ``source`` as ``fmt`` to ``out``: a folder for ``hf`` (absent or empty), a file for
    ``gguf`` (a folder's path gets ``NAME.gguf`` inside it)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format: one of {', '.join(FORMATS)}, not {fmt!r}.")
    out = Path(out).expanduser()
    if fmt == "hf":
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise InvalidInput(f"{out} already exists and is not an empty folder.")
        return export_hf(source, out, settings, progress)
    if tensor_type not in gguf_export.TENSOR_TYPES:
        raise InvalidInput(f"tensor type: one of {', '.join(gguf_export.TENSOR_TYPES)}, not {tensor_type!r}.")
    target = out / f"{safe_name(source.name)}.gguf" if out.is_dir() or not out.suffix else out
    if target.exists():
        raise InvalidInput(f"{target} already exists.")
    # Refuse an architecture GGUF cannot hold before the (slow) merge, from the base's config.
    reason = gguf_export.supported(load_config(resolve_model(source.base, settings), settings).to_dict())
    if reason:
        raise InvalidInput(reason)
    staging = target.parent / f".{target.name}.hf-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        export_hf(source, staging, settings, progress)
        return gguf_export.write(staging, target, name=source.name, tensor_type=tensor_type, progress=progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def safe_name(name: str) -> str:
    """``name`` as a file name: letters, digits, ``-`` ``_`` ``.``; anything else becomes ``-``."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".-")
    return cleaned or "model"


def tar_folder(folder: Path, tar_path: Path, top: str) -> Path:
    """``folder`` as an uncompressed tar (safetensors do not compress) whose entries lie under
    ``top/``, written whole or not at all."""
    tar_path = Path(tar_path)
    scratch = tar_path.with_name(f".{tar_path.name}.partial-{os.getpid()}")
    try:
        with tarfile.open(scratch, "w") as archive:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    archive.add(path, arcname=f"{top}/{path.relative_to(folder)}", recursive=False)
        os.replace(scratch, tar_path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return tar_path
