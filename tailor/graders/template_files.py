"""The grader templates Tailor ships: plain Python files a user copies, edits and registers.

They mirror the original service's console templates: three code graders (RLVR) and four
judge graders (RLAIF). Each file's docstring says what it grades and which record fields it reads;
its first line is the summary ``tailor graders templates`` prints.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

from tailor.errors import InvalidInput, NotFound

TEMPLATES_DIR = Path(__file__).parent / "templates"


# In the original console's order; a test keeps this list and the folder in step.
TEMPLATES = (
    "math_ground_truth",             # (1) mathematical reasoning with ground-truth verification
    "format_constraints",            # (2) format validation and constraint checking
    "generic",                       # (3) generic grader boilerplate
    "judge_instruction_following",   # (4) instruction following
    "judge_summarization",           # (5) summarization of multi-turn dialogs
    "judge_reasoning",               # (6) reasoning evaluation for specialized domains
    "judge_rag_faithfulness",        # (7) RAG faithfulness
)


def template_names() -> list[str]:
    """The templates' names (file names without ``.py``)."""
    return list(TEMPLATES)


def template_path(name: str) -> Path:
    names = template_names()
    if name.removesuffix(".py") not in names:
        raise NotFound(f"No grader template {name!r}; the templates are: {', '.join(names)}.")
    return TEMPLATES_DIR / f"{name.removesuffix('.py')}.py"


def template_summary(name: str) -> str:
    """The first line of the template's docstring."""
    docstring = ast.get_docstring(ast.parse(template_path(name).read_text(encoding="utf-8"))) or ""
    return docstring.strip().splitlines()[0] if docstring.strip() else ""


def copy_template(name: str, destination: Path) -> Path:
    """Copy template ``name`` to ``destination`` (a file, or a folder to put ``NAME.py`` in); never
    overwrites a file."""
    source = template_path(name)
    target = destination / source.name if destination.is_dir() else destination
    if target.exists():
        raise InvalidInput(f"{target} already exists; choose another destination.")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target
