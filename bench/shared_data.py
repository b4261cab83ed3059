"""Where the benchmarks find the shared datasets: ``../shared/datasets``, beside the checkout.

One helper, so no benchmark hard-codes where a checkout lives (the tests do the same through the
``shared_datasets`` fixture of ``tests/conftest.py``). Benchmarks run as ``PYTHONPATH=. python
bench/NAME.py``, so ``bench/`` is on the path and this imports as ``shared_data``.
"""

from __future__ import annotations

from pathlib import Path

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def shared_dataset(*parts: str) -> Path:
    """The path of a file under the shared datasets folder (it may not exist: see ``missing``)."""
    return SHARED_DATASETS.joinpath(*parts)


def missing(path: Path) -> str | None:
    """Why ``path`` cannot be read, for the benchmark to stop with; None when it is there."""
    if path.is_file():
        return None
    return (f"no dataset at {path}: the shared datasets are read from {SHARED_DATASETS} "
            "(../shared/datasets beside the checkout); name another file with --data")
