"""The ``{{ item.FIELD }}`` / ``{{ sample.VARIABLE }}`` templates of grader strings.

``render`` fills a string in from the ``item`` (the dataset record) and ``sample``
(``sample_namespace``: the output as text, as JSON, its tools and choices) namespaces; a variable
they lack is a ``_TemplateError`` carrying the sample's error flag. ``_check_templates`` is what
``validation`` asks of a definition's strings before any sample is seen.
"""

from __future__ import annotations

import json
import re
from typing import Any

SAMPLE_VARIABLES = ("output_text", "output_json", "output_tools", "choices")


_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VARIABLE = re.compile(r"\s*(item|sample)((?:\.[^.\[\]\s{}]+|\[\d+\])*)\s*")
_STEP = re.compile(r"\.([^.\[\]\s{}]+)|\[(\d+)\]")


class _TemplateError(Exception):
    def __init__(self, message: str, flag: str = "other_error"):
        super().__init__(message)
        self.flag = flag


def _check_templates(fields: list[tuple[str, str]], path: str, problems: list[tuple[str, str]]) -> None:
    for where, text in fields:
        for match in _TEMPLATE.finditer(text):
            variable = _VARIABLE.fullmatch(match.group(1))
            if variable is None:
                problems.append((f"{path}.{where}", f"{match.group(0)} is not a variable: use {{{{ item.FIELD }}}} "
                                 f"or {{{{ sample.VARIABLE }}}} ({', '.join(SAMPLE_VARIABLES)})"))
                continue
            steps = _steps(variable.group(2))
            if variable.group(1) == "sample" and (not steps or steps[0] not in SAMPLE_VARIABLES):
                problems.append((f"{path}.{where}", f"{match.group(0)}: the sample namespace holds "
                                 f"{', '.join(SAMPLE_VARIABLES)}"))
            elif variable.group(1) == "item" and not steps:
                problems.append((f"{path}.{where}", f"{match.group(0)}: name a field of the item (item.FIELD)"))


def _steps(text: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _STEP.findall(text)]


def render(text: str, namespaces: dict[str, Any]) -> str:
    """``text`` with each ``{{ namespace.path }}`` replaced by its value (JSON for non-strings)."""
    def value_of(match: re.Match) -> str:
        variable = _VARIABLE.fullmatch(match.group(1))
        if variable is None:
            raise _TemplateError(f"{match.group(0)} is not a template variable")
        value = _lookup(namespaces, variable.group(1), _steps(variable.group(2)), match.group(0))
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _TEMPLATE.sub(value_of, text)


def _lookup(namespaces: dict[str, Any], namespace: str, steps: list[str | int], shown: str) -> Any:
    value = namespaces[namespace]
    for depth, step in enumerate(steps):
        if namespace == "sample" and depth == 1 and steps[0] == "output_json" and value is None:
            raise _TemplateError(f"{shown}: the sample is not JSON, so it has no output_json", "sample_parse_error")
        if isinstance(value, list) and (isinstance(step, int) or str(step).isdigit()) and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and str(step) in value:
            value = value[str(step)]
        else:
            where = namespace + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps[:depth + 1])
            raise _TemplateError(f"{shown}: the {namespace} has no {where}")
    if namespace == "sample" and steps == ["output_json"] and value is None:
        raise _TemplateError(f"{shown}: the sample is not JSON, so it has no output_json", "sample_parse_error")
    return value


def sample_namespace(text: str) -> dict[str, Any]:
    """The ``sample`` namespace of one model output."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return {"output_text": text, "output_json": parsed, "output_tools": [],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
