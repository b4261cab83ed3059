"""A grader definition checked and normalized: ``validate`` and ``to_json``.

``validate`` parses a definition into ``definitions``' models and reports every problem at once,
each with its JSON path: the shapes, the ``{{ ... }}`` variables (``templates``), a judge model
Tailor serves (``model_graders``), and a multi grader's members and formula (``formula``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from tailor.graders.openai.definitions import (
    _CLASSES,
    GRADER_TYPES,
    Grader,
    InvalidGrader,
    LabelModelGrader,
    MultiGrader,
    ScoreModelGrader,
    StringCheckGrader,
    SubGrader,
    TextSimilarityGrader,
    _Definition,
)
from tailor.graders.openai.formula import _FUNCTIONS, _formula, _FormulaError
from tailor.graders.openai.model_graders import _model_problem
from tailor.graders.openai.templates import _check_templates
from tailor.settings import Settings


def validate(definition: Any, settings: Settings, *, path: str = "grader") -> Grader:
    """The grader ``definition`` describes, normalized (content as text, defaults filled in);
    ``InvalidGrader`` listing every problem with its JSON path (``grader.graders.a.operation``).

    Beyond the shapes: template variables must be ``item.*`` or ``sample.<one of
    SAMPLE_VARIABLES>``, a python source must compile and define ``grade(sample, item)``, a model
    grader's ``model`` must be one Tailor serves, and a multi grader's formula must use only its
    graders' names and the known functions."""
    problems: list[tuple[str, str]] = []
    grader = _parse(definition, path, problems, settings, nested=False)
    if problems:
        raise InvalidGrader(problems)
    return grader


def to_json(grader: Grader) -> dict:
    """The normalized grader as JSON (what ``validate`` answers and a job stores)."""
    return grader.model_dump(mode="json", exclude_none=True)


def _parse(value: Any, path: str, problems: list[tuple[str, str]], settings: Settings, *,
           nested: bool) -> Grader | None:
    if not isinstance(value, dict):
        problems.append((path, "must be a grader object"))
        return None
    kind = value.get("type")
    allowed = GRADER_TYPES[:-1] if nested else GRADER_TYPES
    if kind not in allowed:
        hint = " (a multi grader cannot hold another multi grader)" if nested and kind == "multi" else ""
        problems.append((f"{path}.type", f"must be one of {', '.join(allowed)}, not {json.dumps(kind)}{hint}"))
        return None
    if kind != "multi":
        grader = _model(_CLASSES[kind], value, path, problems)
        # The checks beyond the shapes read the raw fields, so that they run even when another
        # field is wrong: every problem is reported at once.
        if grader is not None:
            _check_templates(_template_fields(grader), path, problems)
        else:
            _check_templates([(key, value[key]) for key in ("input", "reference") if isinstance(value.get(key), str)],
                             path, problems)
        if kind in ("score_model", "label_model") and isinstance(value.get("model"), str):
            problem = _model_problem(value["model"], settings)
            if problem:
                problems.append((f"{path}.model", problem))
        return grader
    graders = value.get("graders")
    if isinstance(graders, dict) and isinstance(graders.get("type"), str):  # the SDK's type: one grader, by its name
        graders = {str(graders.get("name") or "grader"): graders}
    members: dict[str, Any] = {}
    if not isinstance(graders, dict) or not graders:
        problems.append((f"{path}.graders", "must be an object of name -> grader, with at least one grader"))
    else:
        for name, sub in graders.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in _FUNCTIONS:
                problems.append((f"{path}.graders.{name}", "a grader's name here is what calculate_output "
                                 "calls it: letters, digits and '_', not starting with a digit, and not "
                                 f"one of {', '.join(sorted(_FUNCTIONS))}"))
            parsed = _parse(sub, f"{path}.graders.{name}", problems, settings, nested=True)
            if parsed is not None:
                members[name] = parsed
    rest = {key: item for key, item in value.items() if key != "graders"}
    shell = _model(MultiGrader, {**rest, "graders": {}}, path, problems)
    if isinstance(graders, dict) and isinstance(value.get("calculate_output"), str):
        try:
            _formula(value["calculate_output"], set(graders))
        except _FormulaError as error:
            problems.append((f"{path}.calculate_output", str(error)))
    if shell is None or len(members) != len(graders or {}):
        return None
    return shell.model_copy(update={"graders": members})


def _model(cls: type[_Definition], value: dict, path: str, problems: list[tuple[str, str]]) -> Any:
    try:
        return cls.model_validate(value)
    except ValidationError as error:
        for item in error.errors():
            where = path + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            problems.append((where, message))
        return None


def _template_fields(grader: SubGrader) -> list[tuple[str, str]]:
    """(relative path, text) of every string of ``grader`` that is rendered."""
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        return [("input", grader.input), ("reference", grader.reference)]
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        return [(f"input[{i}].content", message.content) for i, message in enumerate(grader.input)]
    return []
