"""A recipe as its own process: ``python -m tailor.train.<recipe> SPEC.json``.

``tailor train --processes N`` starts N of these under torchrun (``recipes.launch``), which makes
them one run (``train/distributed.py``). Exit 0 on success, 2 with ``error: ...`` on stderr
(said once, by the main process) when the request or the data is wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tailor.errors import TailorError
from tailor.train.distributed import world
from tailor.train.spec import TrainSpec


def main(run, argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m tailor.train.<recipe> SPEC.json", file=sys.stderr)
        return 2
    try:
        run(TrainSpec.from_json(Path(args[0]).read_text()))
    except TailorError as error:
        if world().main:  # under torchrun every process fails alike; say it once
            print(f"error: {error.message}", file=sys.stderr)
        return 2
    return 0
