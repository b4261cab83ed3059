"""OpenAI's grader objects (``method.reinforcement.grader``) as Tailor graders.

OpenAI's fine-tuning API describes a reinforcement job's grader as a JSON object, and
``client.fine_tuning.alpha.graders.validate`` / ``.run`` check and try one. The contract is the
openai-python SDK's ``types/graders`` and ``types/fine_tuning/alpha/grader_run_response.py``:

``string_check``     ``input`` compared with ``reference``: ``eq`` / ``ne`` (exact, case-sensitive),
                     ``like`` (``reference`` occurs in ``input``), ``ilike`` (the same, ignoring
                     case); 1.0 or 0.0.
``text_similarity``  ``evaluation_metric`` of ``input`` against ``reference`` (``METRICS`` says how
                     each is computed); a score in 0–1.
``python``           ``source`` defines ``grade(sample, item) -> float``, run in the grader sandbox
                     (``tailor.graders.sandbox``: bubblewrap, no network, CPU, memory and wall-clock
                     limits), exactly where an operator's Python graders run.
``score_model``      a judge model answers the rendered ``input`` messages with a number within
                     ``range`` (default [0, 1]); that number is the reward.
``label_model``      a judge model answers with one of ``labels``; 1.0 when it is in ``passing_labels``.
``multi``            ``graders`` (name -> one of the above) combined by ``calculate_output``, a
                     formula over their names (``+ - * / ** ^``, ``min max abs sqrt log exp floor
                     ceil``), evaluated by a whitelist over Python's ``ast`` (never ``eval``).

Templates. Strings may hold ``{{ item.FIELD }}`` (the dataset record; nested ``a.b``, ``a[0]`` or
``a.0``) and ``{{ sample.output_text }}``, ``{{ sample.output_json.FIELD }}`` (the output parsed as
JSON; an error when it is not JSON), ``{{ sample.output_tools }}`` (always ``[]``: Tailor's RFT
samples are text) and ``{{ sample.choices }}``. A value that is not a string is written as JSON. A
variable the item or sample lacks is an error of that sample (zero reward), never an empty string.

The judge of the model graders is a model *Tailor* serves: a catalog id or ``TAILOR_MODEL_ALIASES``
key (``tailor.catalog.resolve_registered_model``), or the name of an operator-configured
``remote_models`` entry — never an address the caller supplies. It is asked through the
evaluation backends (``tailor.evaluate.backends``), greedy unless ``sampling_params`` say
otherwise; a reply that does not parse is asked once more with a reminder of the form, as
``tailor.evaluate.judge.ask_judge`` does, then is a ``model_grader_parse_error``.

Entry points::

    validate(definition, settings) -> Grader            # InvalidGrader naming each bad field's path
    run(definition, sample_text=..., item=..., settings=...) -> dict   # GraderRunResponse's shape
    grade_samples(definition, samples, settings) -> list[GradeResult]   # registry.grade, kind "openai"
    grader_info(definition, settings) -> GraderInfo     # what an RFT job snapshots

Refused, each with a message saying why: image and audio content (Tailor's judges read text), a
``multi`` inside a ``multi`` (the SDK does not allow it either), models Tailor does not serve.
Accepted and ignored: ``python.image_tag`` (the sandbox runs Tailor's own Python), and
``sampling_params.seed`` and ``reasoning_effort`` (Tailor's engine samples with a fixed seed and
has no reasoning effort).
"""

from __future__ import annotations

import ast
import json
import math
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tailor.errors import InvalidInput, ModelUnavailable, NotFound
from tailor.graders.contract import GradeResult, completion_of, failed, prompt_of
from tailor.graders.info import GraderInfo
from tailor.settings import Settings

GRADER_TYPES = ("string_check", "text_similarity", "python", "score_model", "label_model", "multi")
METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor",
           "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")
SAMPLE_VARIABLES = ("output_text", "output_json", "output_tools", "choices")
PYTHON_SOURCE_LIMIT = 256 * 1024  # OpenAI's limit on a python grader's source, in bytes
PYTHON_MEMORY_MB = 2048  # the sandbox's address-space limit for a python grader
PYTHON_TIMEOUT_SECONDS = 60  # a batch's wall clock (and CPU) limit, plus PYTHON_SECONDS_PER_SAMPLE each
PYTHON_SECONDS_PER_SAMPLE = 2
PYTHON_TIMEOUT_LIMIT = 900  # at most (the registered graders' limit too)
FORMULA_LIMIT = 1000  # characters of calculate_output
JUDGE_MAX_TOKENS = 256  # a judge's reply unless sampling_params.max_completions_tokens says otherwise
JUDGE_RETRIES = 1
ERROR_FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
               "model_grader_refusal_error", "model_grader_server_error", "other_error",
               "python_grader_runtime_error", "python_grader_server_error", "sample_parse_error",
               "truncated_observation_error", "unresponsive_reward_error")


class InvalidGrader(InvalidInput):
    """A grader definition with problems: ``problems`` is ``[(JSON path, problem), ...]``; the
    API layer can raise its own ``InvalidFields(problems)`` from it."""

    def __init__(self, problems: Iterable[tuple[str, str]]):
        self.problems = list(problems)
        lines = [f"{path}: {problem}" for path, problem in self.problems]
        plural = "" if len(lines) == 1 else "s"
        super().__init__(f"Invalid grader ({len(lines)} problem{plural}):\n  " + "\n  ".join(lines),
                         param=self.problems[0][0] if self.problems else None)

    def under(self, prefix: str) -> InvalidGrader:
        """The same problems for a grader found at ``prefix`` of a request (paths start ``grader``)."""
        return InvalidGrader((prefix + path.removeprefix("grader"), problem) for path, problem in self.problems)


# ---------------------------------------------------------------------------------------------
# The definitions


class _Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StringCheckGrader(_Definition):
    type: Literal["string_check"]
    name: str
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]


class TextSimilarityGrader(_Definition):
    type: Literal["text_similarity"]
    name: str
    input: str
    reference: str
    evaluation_metric: Literal[METRICS]  # type: ignore[valid-type]


class PythonGrader(_Definition):
    type: Literal["python"]
    name: str
    source: str
    image_tag: str | None = None  # accepted, ignored: the sandbox runs Tailor's own Python

    @field_validator("source")
    @classmethod
    def _defines_grade(cls, source: str) -> str:
        if len(source.encode("utf-8", "replace")) > PYTHON_SOURCE_LIMIT:
            raise ValueError(f"the source is larger than {PYTHON_SOURCE_LIMIT // 1024} KB")
        _check_grade_function(source)
        return source


class InputMessage(_Definition):
    role: Literal["user", "assistant", "system", "developer"]
    content: str  # text parts are joined; images and audio are refused (the judges read text)
    type: Literal["message"] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, content: Any) -> str:
        return _content_text(content)


class SamplingParams(_Definition):
    max_completions_tokens: int | None = Field(default=None, ge=1, le=32768)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None  # accepted, ignored: Tailor's engine samples with a fixed seed
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None  # accepted, ignored


class ScoreModelGrader(_Definition):
    type: Literal["score_model"]
    name: str
    model: str
    input: list[InputMessage] = Field(min_length=1)
    range: tuple[float, float] = (0.0, 1.0)
    sampling_params: SamplingParams | None = None

    @field_validator("range")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(bound) for bound in bounds) or bounds[0] >= bounds[1]:
            raise ValueError("the range must be two finite numbers [low, high] with low < high")
        return bounds


class LabelModelGrader(_Definition):
    type: Literal["label_model"]
    name: str
    model: str
    input: list[InputMessage] = Field(min_length=1)
    labels: list[str] = Field(min_length=1)
    passing_labels: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _subset(self) -> LabelModelGrader:
        if len({label.strip().lower() for label in self.labels}) != len(self.labels):
            raise ValueError("labels must differ from each other (ignoring case and surrounding spaces)")
        unknown = [label for label in self.passing_labels if label not in self.labels]
        if unknown:
            raise ValueError(f"passing_labels must be a subset of labels; not in labels: {unknown}")
        return self


SubGrader = StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader


class MultiGrader(_Definition):
    type: Literal["multi"]
    name: str
    graders: dict[str, Annotated[SubGrader, Field(discriminator="type")]]
    calculate_output: str


Grader = SubGrader | MultiGrader
_CLASSES: dict[str, type[_Definition]] = {
    "string_check": StringCheckGrader, "text_similarity": TextSimilarityGrader, "python": PythonGrader,
    "score_model": ScoreModelGrader, "label_model": LabelModelGrader, "multi": MultiGrader}


def _content_text(content: Any) -> str:
    """A message's content as text: a string, a text part, or a list of them."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = []
    for position, part in enumerate(parts):
        where = f"part {position}" if isinstance(content, list) else "the content"
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in ("input_text", "output_text"):
            if not isinstance(part.get("text"), str) or set(part) - {"type", "text"}:
                raise ValueError(f"{where}: a {part['type']} part is {{\"type\", \"text\": string}}")
            texts.append(part["text"])
        elif isinstance(part, dict) and part.get("type") in ("input_image", "input_audio"):
            raise ValueError(f"{where}: {part['type']} is not supported: Tailor's judge models read text only")
        else:
            raise ValueError(f"{where} must be a string or an input_text/output_text part")
    return "".join(texts)


# ---------------------------------------------------------------------------------------------
# Validating


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


def _check_grade_function(source: str) -> None:
    try:
        tree = ast.parse(source, "grader.py")
        compile(tree, "grader.py", "exec", dont_inherit=True)
    except SyntaxError as error:
        raise ValueError(f"the source does not compile: line {error.lineno}: {error.msg}") from None
    except ValueError as error:
        raise ValueError(f"the source does not compile: {error}") from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "grade":
            positional = [*node.args.posonlyargs, *node.args.args]
            if len(positional) < 2 and node.args.vararg is None:
                raise ValueError(f"line {node.lineno}: grade must accept two arguments (sample, item)")
            return
        if isinstance(node, ast.AsyncFunctionDef) and node.name == "grade":
            raise ValueError("grade must be a plain function (def, not async def)")
        targets = (node.targets if isinstance(node, ast.Assign) else
                   [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(target, ast.Name) and target.id == "grade" for target in targets):
            return
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
                (alias.asname or alias.name) == "grade" for alias in node.names):
            return
    raise ValueError("the source defines no top-level function grade(sample, item) -> float")


# ---------------------------------------------------------------------------------------------
# Templates

_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_VARIABLE = re.compile(r"\s*(item|sample)((?:\.[^.\[\]\s{}]+|\[\d+\])*)\s*")
_STEP = re.compile(r"\.([^.\[\]\s{}]+)|\[(\d+)\]")


class _TemplateError(Exception):
    def __init__(self, message: str, flag: str = "other_error"):
        super().__init__(message)
        self.flag = flag


def _template_fields(grader: SubGrader) -> list[tuple[str, str]]:
    """(relative path, text) of every string of ``grader`` that is rendered."""
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        return [("input", grader.input), ("reference", grader.reference)]
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        return [(f"input[{i}].content", message.content) for i, message in enumerate(grader.input)]
    return []


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


# ---------------------------------------------------------------------------------------------
# Grading


@dataclass
class _Outcome:
    """One grader's verdict on one sample."""

    reward: float = 0.0
    flags: set[str] = field(default_factory=set)
    details: dict[str, str] = field(default_factory=dict)  # error flag -> what happened
    scores: dict[str, float] = field(default_factory=dict)  # a multi grader's members
    sampled: bool = False  # a judge model was asked

    def error(self) -> str | None:
        if not self.flags:
            return None
        return "; ".join(self.details.get(flag, flag.replace("_", " ")) for flag in sorted(self.flags))


def _failure(flag: str, message: str) -> _Outcome:
    return _Outcome(0.0, {flag}, {flag: message})


Judges = Callable[[str], Any]  # model name -> a tailor.evaluate.backends.Backend


@dataclass
class _Context:
    settings: Settings
    judges: Judges | None
    log: Callable[[str], None] | None


def _grade(grader: Grader, cases: list[dict], context: _Context) -> list[_Outcome]:
    """One outcome per case (``{"sample": namespace, "item": dict}``)."""
    if not cases:
        return []
    if isinstance(grader, MultiGrader):
        return _grade_multi(grader, cases, context)
    if isinstance(grader, PythonGrader):
        return _grade_python(grader, cases, context)
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        return _grade_model(grader, cases, context)
    outcomes: list[_Outcome] = []
    for case in cases:
        try:
            given, reference = render(grader.input, case), render(grader.reference, case)
        except _TemplateError as error:
            outcomes.append(_failure(error.flag, str(error)))
            continue
        if isinstance(grader, StringCheckGrader):
            outcomes.append(_Outcome(string_check(grader.operation, given, reference)))
        else:
            try:
                outcomes.append(_Outcome(similarity(grader.evaluation_metric, given, reference)))
            except Exception as error:  # a metric library failing (e.g. the encoder not loading)
                outcomes.append(_failure("other_error", f"{grader.evaluation_metric}: {type(error).__name__}: "
                                                        f"{error}"))
    return outcomes


def string_check(operation: str, given: str, reference: str) -> float:
    if operation == "eq":
        return float(given == reference)
    if operation == "ne":
        return float(given != reference)
    if operation == "like":
        return float(reference in given)
    return float(reference.casefold() in given.casefold())  # ilike


def grade_samples(definition: dict, samples: list[dict], settings: Settings, *,
                  log: Callable[[str], None] | None = None, judges: Judges | None = None) -> list[GradeResult]:
    """Grade a batch of ``tailor.graders.contract`` samples: the sample's completion is
    ``sample.output_text`` and the record (its fields, its prompt as ``messages``) is the ``item``.
    A failing sample scores 0 with the reason (``contract.failed``); this never raises for a grader's
    or a sample's fault."""
    ids = [str(item["id"]) for item in samples]
    try:
        grader = validate(definition, settings)
    except InvalidInput as error:
        return [failed(sample_id, error.message) for sample_id in ids]
    cases = [{"sample": sample_namespace(completion_of(item)), "item": _item_of(item)} for item in samples]
    try:
        outcomes = _grade(grader, cases, _Context(settings, judges, log))
    except Exception as error:  # a fault of Tailor's own: still a zero with its reason, never a crashed job
        return [failed(sample_id, f"the {grader.type} grader failed: {type(error).__name__}: {error}")
                for sample_id in ids]
    results = []
    for sample_id, outcome in zip(ids, outcomes, strict=True):
        error = outcome.error()
        results.append(failed(sample_id, error) if error else GradeResult(sample_id, outcome.reward, outcome.scores))
    return results


def _item_of(sample: dict) -> dict:
    """The training record a contract sample was built from: its fields and its prompt."""
    metadata = sample.get("metadata")
    item = dict(metadata) if isinstance(metadata, dict) else {}
    item["messages"] = prompt_of(sample)
    return item


def run(definition: Any, *, sample_text: str, item: Any, settings: Settings,
        judges: Judges | None = None) -> dict:
    """Grade one output, as ``POST /v1/fine_tuning/alpha/graders/run`` answers: the SDK's
    ``GraderRunResponse`` (reward, metadata, sub_rewards, model_grader_token_usage_per_model).
    ``InvalidGrader`` for a bad definition; everything that goes wrong while grading is reported
    in ``metadata.errors`` with a zero reward."""
    grader = validate(definition, settings)
    if item is None:
        item = {}
    if not isinstance(sample_text, str):
        raise InvalidGrader([("model_sample", "must be a string")])
    started = time.perf_counter()
    [outcome] = _grade(grader, [{"sample": sample_namespace(sample_text), "item": item}],
                       _Context(settings, judges, None))
    errors: dict[str, Any] = {flag: flag in outcome.flags for flag in ERROR_FLAGS}
    errors["model_grader_server_error_details"] = outcome.details.get("model_grader_server_error")
    errors["python_grader_runtime_error_details"] = outcome.details.get("python_grader_runtime_error")
    errors["python_grader_server_error_type"] = _server_error_type(outcome.details.get("python_grader_server_error"))
    other = [outcome.details[flag] for flag in sorted(outcome.flags) if flag in outcome.details
             and flag not in ("model_grader_server_error", "python_grader_runtime_error")]
    if other:
        errors["details"] = "; ".join(other)  # beyond the SDK's fields: what the flags do not say
    sub_rewards = dict(outcome.scores) if isinstance(grader, MultiGrader) else {}
    return {
        "reward": outcome.reward,
        "metadata": {"name": grader.name, "type": grader.type, "errors": errors,
                     "execution_time": time.perf_counter() - started, "scores": dict(outcome.scores),
                     "token_usage": None, "sampled_model_name": None},
        "sub_rewards": sub_rewards,
        "model_grader_token_usage_per_model": {},
    }


def _server_error_type(message: str | None) -> str | None:
    """A python grader's sandbox failure in one word (the message itself goes to ``details``)."""
    if message is None:
        return None
    for needle, kind in (("timeout", "timeout"), ("bubblewrap", "sandbox_unavailable"),
                         ("sandbox", "sandbox_unavailable"), ("larger than", "response_too_large")):
        if needle in message:
            return kind
    return "crashed"


def grader_info(definition: Any, settings: Settings) -> GraderInfo:
    """The ``GraderInfo`` an RFT job created through OpenAI's API snapshots: kind ``openai``, the
    normalized definition. ``InvalidGrader`` for a bad one (paths under ``grader``; the route puts
    them under ``method.reinforcement.grader``), and for a python grader where the sandbox cannot run
    (the job would only score zeros)."""
    from tailor.arns import new_resource_id
    from tailor.graders.sandbox import sandbox_problem

    grader = validate(definition, settings)
    members = ([(f"grader.graders.{name}", sub) for name, sub in grader.graders.items()]
               if isinstance(grader, MultiGrader) else [("grader", grader)])
    pythons = [f"{where}.source" for where, sub in members if isinstance(sub, PythonGrader)]
    problem = sandbox_problem() if pythons else None
    if problem:  # the job would score every sample 0: refuse it now, saying why
        raise InvalidGrader([(where, f"python graders cannot run on this server: {problem}") for where in pythons])
    return GraderInfo(id=new_resource_id(), arn=f"openai-grader:{grader.type}:{grader.name}", name=grader.name,
                      kind="openai", code=None, url=None, timeout_seconds=PYTHON_TIMEOUT_LIMIT,
                      memory_mb=PYTHON_MEMORY_MB, created_at=datetime.now(UTC), definition=to_json(grader))


# ---------------------------------------------------------------------------------------------
# text_similarity


def similarity(metric: str, given: str, reference: str) -> float:
    """``evaluation_metric`` of ``given`` against ``reference``, in 0–1 (cosine may stray a rounding
    error past it). See ``METRIC_NOTES``."""
    if metric == "fuzzy_match":
        return fuzzy_match(given, reference)
    if metric == "cosine":
        from tailor.evaluate.metrics import embedding_cosine

        return embedding_cosine([given], [reference])[0]
    if metric in ("rouge_1", "rouge_2", "rouge_l"):
        from tailor.evaluate.metrics import rouge

        return rouge([given], [reference])[0]["rouge" + metric[-1].replace("l", "L")]
    if metric.startswith("rouge_"):
        return _rouge_n(int(metric[-1]), given, reference)
    hypothesis, references = given.split(), [reference.split()]
    if not hypothesis or not references[0]:
        return float(not hypothesis and not references[0])
    if metric == "bleu":
        from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

        return float(sentence_bleu(references, hypothesis, smoothing_function=SmoothingFunction().method1))
    if metric == "gleu":
        from nltk.translate.gleu_score import sentence_gleu

        return float(sentence_gleu(references, hypothesis))
    if metric == "meteor":
        from nltk.translate.meteor_score import meteor_score

        return float(meteor_score(references, hypothesis, wordnet=_NoSynonyms()))
    raise ValueError(f"unknown metric {metric!r}")


METRIC_NOTES = {
    "fuzzy_match": "rapidfuzz's fuzz.ratio on default-processed text (lowercase, non-alphanumerics as spaces): "
                   "2 x longest common subsequence / total length, computed here (no rapidfuzz dependency)",
    "bleu": "NLTK sentence BLEU on whitespace tokens, 1-4-grams equally weighted, smoothing method 1",
    "gleu": "NLTK sentence GLEU on whitespace tokens (1-4-grams)",
    "meteor": "NLTK METEOR on whitespace tokens, exact and Porter-stem matches; no WordNet synonym stage "
              "(Tailor ships no WordNet data)",
    "rouge_1": "F-measure, rouge-score with the Porter stemmer (tailor.evaluate.metrics: Rouge1)",
    "rouge_2": "F-measure, rouge-score with the Porter stemmer (tailor.evaluate.metrics: Rouge2)",
    "rouge_3": "F-measure, rouge-score with the Porter stemmer", "rouge_4": "the same, 4-grams",
    "rouge_5": "the same, 5-grams",
    "rouge_l": "F-measure of the longest common subsequence (tailor.evaluate.metrics: RougeL)",
    "cosine": "cosine of sentence embeddings from Tailor's bundled encoder, all-MiniLM-L6-v2 "
              "(tailor.evaluate.metrics: EmbeddingCosine), not OpenAI's text-embedding-3-large",
}


class _NoSynonyms:
    """METEOR's WordNet stage, without WordNet: no word has synonyms."""

    def synsets(self, *args, **kwargs) -> list:
        return []


_ROUGE_N: dict[int, Any] = {}


def _rouge_n(n: int, given: str, reference: str) -> float:
    if n not in _ROUGE_N:
        from rouge_score import rouge_scorer

        _ROUGE_N[n] = rouge_scorer.RougeScorer([f"rouge{n}"], use_stemmer=True)  # as metrics.rouge does
    return float(_ROUGE_N[n].score(reference, given)[f"rouge{n}"].fmeasure)


_NOT_ALNUM = re.compile(r"[^0-9a-zA-Z\u00C0-\uFFFF]+")


def _processed(text: str) -> str:
    """rapidfuzz's ``utils.default_process``: lowercase, non-alphanumerics to spaces, trimmed."""
    return _NOT_ALNUM.sub(" ", text).lower().strip()


def fuzzy_match(given: str, reference: str) -> float:
    """Normalized Indel similarity of the processed texts: 2 * LCS / (len a + len b)."""
    first, second = _processed(given), _processed(reference)
    if not first and not second:
        return 1.0
    if not first or not second:
        return 0.0
    return 2 * _lcs_length(first, second) / (len(first) + len(second))


def _lcs_length(first: str, second: str) -> int:
    """Length of the longest common subsequence, bit-parallel (Allison-Dix/Hyyrö) on Python ints."""
    masks: dict[str, int] = {}
    for position, character in enumerate(first):
        masks[character] = masks.get(character, 0) | (1 << position)
    full = (1 << len(first)) - 1
    row = full
    for character in second:
        matches = row & masks.get(character, 0)
        row = ((row + matches) | (row - matches)) & full
    return len(first) - bin(row).count("1")


# ---------------------------------------------------------------------------------------------
# python


_WRAPPER = '''\
"""Tailor's adapter: OpenAI's grade(sample, item) called the Lambda way (one call per sample)."""
_namespace = {{"__name__": "grader"}}
exec(compile({source!r}, "grader.py", "exec"), _namespace)
_grade = _namespace.get("grade")
if not callable(_grade):
    raise NameError("the source defines no function grade(sample, item)")


def lambda_handler(event, context):
    results = []
    for entry in event:
        value = _grade(entry["sample"], entry["item"])
        if not isinstance(value, (str, bytes)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        results.append({{"id": entry["id"], "aggregate_reward_score": value}})
    return results
'''


def _grade_python(grader: PythonGrader, cases: list[dict], context: _Context) -> list[_Outcome]:
    from tailor.graders.sandbox import run_python

    batch = [{"id": str(i), "sample": case["sample"], "item": case["item"]} for i, case in enumerate(cases)]
    timeout = min(PYTHON_TIMEOUT_LIMIT, PYTHON_TIMEOUT_SECONDS + PYTHON_SECONDS_PER_SAMPLE * len(cases))
    with tempfile.TemporaryDirectory(prefix="tailor-openai-grader-") as folder:
        file = Path(folder) / "grader.py"
        file.write_text(_WRAPPER.format(source=grader.source), encoding="utf-8")
        results = run_python(file, batch, timeout_seconds=timeout, memory_mb=PYTHON_MEMORY_MB,
                             function_name=grader.name[:64] or "grader", log=context.log)
    outcomes = []
    for result in results:
        if result.error is None:
            outcomes.append(_Outcome(result.reward))
            continue
        message = result.error.replace("lambda_handler raised", "grade raised")
        if message.startswith(("grade raised", "the grader could not be loaded", "aggregate_reward_score")):
            outcomes.append(_failure("python_grader_runtime_error", message))
        else:  # the sandbox: not available, past its limits, crashed
            outcomes.append(_failure("python_grader_server_error", message))
    return outcomes


# ---------------------------------------------------------------------------------------------
# score_model, label_model


SCORE_FORM = ("Reply with your reasoning if you need any, then a last line of exactly this form:\n"
              "Score: N\nwhere N is a number from {low:g} to {high:g}.")
LABEL_FORM = ("Reply with your reasoning if you need any, then a last line of exactly this form:\n"
              "Label: L\nwhere L is one of: {labels}.")
REMINDER = "Your reply did not end with the line the form asks for. Reply again, ending with that line:\n{form}"
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SCORE_LINE = re.compile(rf"^[\s*_#>-]*(?:score|result|rating)[\s*_]*[:=][\s*_]*({_NUMBER})[\s*_.]*$",
                         re.IGNORECASE | re.MULTILINE)
_LABEL_LINE = re.compile(r"^[\s*_#>-]*(?:label|result)[\s*_]*[:=][\s*_]*(.+?)[\s*_.]*$", re.IGNORECASE | re.MULTILINE)


def _model_problem(model: str, settings: Settings) -> str | None:
    """Why ``model`` cannot judge here (None when it can): it must be a remote model the operator
    configured or a catalog id / alias; never an address."""
    if model in settings.remote_models:
        return None
    from tailor.catalog import resolve_registered_model

    try:
        resolve_registered_model(model, settings)
    except (NotFound, ModelUnavailable, InvalidInput) as error:
        configured = ", ".join(sorted(settings.remote_models)) or "none configured"
        return (f"{error.message} A judge model is a model this server runs (a catalog id or "
                f"TAILOR_MODEL_ALIASES key) or an operator-configured remote model ({configured}).")
    return None


_OPENERS: dict[str, Any] = {}  # home -> the Opener whose engine runs Tailor's own judges here
_OPENERS_LOCK = threading.Lock()


def _default_judges(settings: Settings) -> Judges:
    """Judges opened in this process: a remote model with the operator's address and credentials,
    or one of Tailor's own models in an engine of this process (one per home, kept for the
    process's life: a training job grades every step)."""
    from tailor.evaluate.backends import Opener, remote_backend
    from tailor.serve.protocol import Target

    def open_judge(model: str) -> Any:
        if model in settings.remote_models:
            return remote_backend(model, settings.remote_models[model], settings.inference_timeout_seconds)
        def resolve(name: str) -> Target:
            from tailor.catalog import resolve_registered_model

            resolve_registered_model(name, settings)  # a catalog id or alias: never a path or an address
            return Target(base=name)

        with _OPENERS_LOCK:
            opener = _OPENERS.setdefault(str(settings.home), Opener(settings, resolve, max_models=1))
        return opener.open(model)
    return open_judge


def close_judges() -> None:
    """Stop the engines the default judges started (tests; a process that is done grading)."""
    with _OPENERS_LOCK:
        openers = list(_OPENERS.values())
        _OPENERS.clear()
    for opener in openers:
        opener.close()


def _conversation(grader: ScoreModelGrader | LabelModelGrader, case: dict, form: str) -> list[dict]:
    messages = [{"role": "system" if message.role == "developer" else message.role,
                 "content": render(message.content, case)} for message in grader.input]
    if messages[-1]["role"] == "user":
        messages[-1] = {"role": "user", "content": f"{messages[-1]['content'].rstrip()}\n\n{form}"}
    else:
        messages.append({"role": "user", "content": form})
    return messages


def _grade_model(grader: ScoreModelGrader | LabelModelGrader, cases: list[dict], context: _Context) -> list[_Outcome]:
    from tailor.evaluate.backends import Failure, Generation

    if isinstance(grader, ScoreModelGrader):
        low, high = grader.range
        form = SCORE_FORM.format(low=low, high=high)
        parse: Callable[[str], float | None] = lambda reply: parse_score(reply, (low, high))  # noqa: E731
    else:
        form = LABEL_FORM.format(labels=", ".join(grader.labels))
        parse = lambda reply: _label_reward(grader, reply)  # noqa: E731
    outcomes: list[_Outcome | None] = [None] * len(cases)
    conversations, asked = [], []
    for index, case in enumerate(cases):
        try:
            conversations.append(_conversation(grader, case, form))
            asked.append(index)
        except _TemplateError as error:
            outcomes[index] = _failure(error.flag, str(error))
    if asked:
        problem = _model_problem(grader.model, context.settings)
        try:
            judge = None if problem else (context.judges or _default_judges(context.settings))(grader.model)
        except Exception as error:  # the model cannot be opened here
            problem = f"{type(error).__name__}: {error}"
        if judge is None:
            for index in asked:
                outcomes[index] = _failure("model_grader_server_error", f"{grader.model}: {problem}")
        else:
            params = getattr(grader, "sampling_params", None) or SamplingParams()
            generation = Generation(max_tokens=params.max_completions_tokens or JUDGE_MAX_TOKENS,
                                    temperature=params.temperature if params.temperature is not None else 0.0,
                                    top_p=params.top_p if params.top_p is not None else 1.0)
            verdicts = ask(judge, conversations, parse, REMINDER.format(form=form), generation)
            for index, (value, reply) in zip(asked, verdicts, strict=True):
                if value is not None:
                    outcomes[index] = _Outcome(value, sampled=True)
                elif isinstance(reply, Failure):
                    outcomes[index] = _failure("model_grader_server_error", f"{grader.model}: {reply.message}")
                else:
                    shown = reply.strip().replace("\n", " ")[:300]
                    outcomes[index] = _failure("model_grader_parse_error", f"{grader.model} gave no parsable "
                                               f"{'score' if isinstance(grader, ScoreModelGrader) else 'label'} "
                                               f"after {JUDGE_RETRIES + 1} attempts; its last reply: {shown!r}")
    return [outcome or _failure("other_error", "not graded") for outcome in outcomes]


def ask(judge: Any, conversations: list[list[dict]], parse: Callable[[str], Any], reminder: str,
        generation: Any, retries: int = JUDGE_RETRIES) -> list[tuple[Any, Any]]:
    """``(parsed value or None, last reply)`` per conversation: every conversation asked as one batch,
    the replies that do not parse asked again (up to ``retries`` times) in the same conversation with
    the judge's reply and ``reminder``. The loop of ``tailor.evaluate.judge.ask_judge``, for a form
    of reply other than its ``Rating: N``."""
    replies = list(judge.chat(conversations, generation, None))
    values: list[Any] = [None] * len(conversations)
    for attempt in range(retries + 1):
        again = []
        for index, reply in enumerate(replies):
            if values[index] is not None:
                continue
            values[index] = parse(reply) if isinstance(reply, str) else None
            if values[index] is None and attempt < retries and isinstance(reply, str):
                again.append(index)
        if not again:
            break
        retry = [conversations[i] + [{"role": "assistant", "content": replies[i]},
                                     {"role": "user", "content": reminder}] for i in again]
        for index, reply in zip(again, judge.chat(retry, generation, None), strict=True):
            replies[index] = reply
    return list(zip(values, replies, strict=True))


def _unfenced(reply: str) -> str:
    text = reply.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    return fenced.group(1) if fenced else text


def parse_score(reply: str, bounds: tuple[float, float]) -> float | None:
    """The score in a judge's reply — a JSON object's ``result`` (OpenAI's structured form), the last
    ``Score: N`` line, or a reply that is only a number — when it lies within ``bounds``; else None."""
    text = _unfenced(reply)
    value: Any = None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        value = parsed.get("result", parsed.get("score"))
    elif isinstance(parsed, int | float):
        value = parsed
    else:
        lines = _SCORE_LINE.findall(text)
        value = float(lines[-1]) if lines else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if bounds[0] <= value <= bounds[1] else None


def parse_label(reply: str, labels: list[str]) -> str | None:
    """The label in a judge's reply — a JSON object's ``result``, the last ``Label: L`` line, or a
    reply that is only the label — matched ignoring case, quotes and surrounding punctuation."""
    text = _unfenced(reply)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        candidate = parsed.get("result", parsed.get("label"))
    elif isinstance(parsed, str):
        candidate = parsed
    else:
        lines = _LABEL_LINE.findall(text)
        candidate = lines[-1] if lines else text
    if not isinstance(candidate, str):
        return None
    wanted = candidate.strip().strip("\"'`*.").strip().lower()
    return next((label for label in labels if label.strip().lower() == wanted), None)


def _label_reward(grader: LabelModelGrader, reply: str) -> float | None:
    label = parse_label(reply, grader.labels)
    return None if label is None else float(label in grader.passing_labels)


# ---------------------------------------------------------------------------------------------
# multi


class _FormulaError(Exception):
    pass


_FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {  # name -> (function, least, most args)
    "min": (min, 1, None), "max": (max, 1, None), "abs": (abs, 1, 1), "sqrt": (math.sqrt, 1, 1),
    "log": (math.log, 1, 2), "exp": (math.exp, 1, 1), "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1),
}
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: _power(a, b),
}


def _power(base: float, exponent: float) -> float:
    if abs(exponent) > 64:
        raise _FormulaError(f"the exponent {exponent:g} is beyond ±64")
    result = float(base) ** float(exponent)
    if isinstance(result, complex):
        raise _FormulaError(f"{base:g} ** {exponent:g} is not a real number")
    return result


def _formula(text: str, names: set[str]) -> ast.expr:
    """``calculate_output`` parsed and checked: numbers, the graders' names, + - * / ** (or ^),
    unary +/-, parentheses and ``_FUNCTIONS``; ``_FormulaError`` says what else it holds."""
    if not isinstance(text, str) or not text.strip():
        raise _FormulaError("the formula is empty")
    if len(text) > FORMULA_LIMIT:
        raise _FormulaError(f"the formula is longer than {FORMULA_LIMIT} characters")
    try:
        # ^ is the power, as in spreadsheets, with the power's precedence (Python's ^ binds looser).
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval").body
    except SyntaxError as error:
        raise _FormulaError(f"the formula does not parse: {error.msg} (column {error.offset})") from None
    except (RecursionError, MemoryError):
        raise _FormulaError("the formula is nested too deeply") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise _FormulaError(f"{node.value!r} is not a number")
        elif isinstance(node, ast.Name):
            if node.id not in names and node.id not in _FUNCTIONS:
                raise _FormulaError(f"{node.id!r} names no grader (the graders are {', '.join(sorted(names))})")
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
                raise _FormulaError(f"only the functions {', '.join(_FUNCTIONS)} can be called, "
                                    "with positional arguments")
            _, least, most = _FUNCTIONS[node.func.id]
            if len(node.args) < least or (most is not None and len(node.args) > most):
                raise _FormulaError(f"{node.func.id} takes {least if most == least else f'{least} or more'}"
                                    f"{'' if most in (least, None) else f' to {most}'} argument(s)")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise _FormulaError(f"the operator {type(node.op).__name__} is not allowed (use + - * / ** ^)")
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, ast.UAdd | ast.USub):
                raise _FormulaError(f"the operator {type(node.op).__name__} is not allowed")
        elif not isinstance(node, ast.Load | ast.operator | ast.unaryop):
            raise _FormulaError(f"{type(node).__name__} is not allowed in a formula")
        if isinstance(node, ast.Name) and node.id in _FUNCTIONS and not _is_called(tree, node):
            raise _FormulaError(f"{node.id} is a function; call it: {node.id}(...)")
    return tree


def _is_called(tree: ast.expr, name: ast.Name) -> bool:
    return any(isinstance(node, ast.Call) and node.func is name for node in ast.walk(tree))


def evaluate_formula(text: str, values: dict[str, float]) -> float:
    """The value of ``calculate_output`` for the graders' ``values``; ``_FormulaError`` when it is
    not allowed or not a finite number."""
    tree = _formula(text, set(values))

    def value(node: ast.expr) -> float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return float(values[node.id])
        if isinstance(node, ast.UnaryOp):
            operand = value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        function = _FUNCTIONS[node.func.id][0]
        return float(function(*[value(argument) for argument in node.args]))

    try:
        result = value(tree)
    except (ArithmeticError, ValueError, TypeError) as error:
        raise _FormulaError(f"the formula cannot be computed: {type(error).__name__}: {error}") from None
    except RecursionError:
        raise _FormulaError("the formula is nested too deeply") from None
    if isinstance(result, complex) or not math.isfinite(result):
        raise _FormulaError(f"the formula's value is {result}, not a finite number")
    return float(result)


def _grade_multi(grader: MultiGrader, cases: list[dict], context: _Context) -> list[_Outcome]:
    members = {name: _grade(sub, cases, context) for name, sub in grader.graders.items()}
    outcomes = []
    for index in range(len(cases)):
        mine = {name: results[index] for name, results in members.items()}
        outcome = _Outcome(scores={name: result.reward for name, result in mine.items()},
                           sampled=any(result.sampled for result in mine.values()))
        for name, result in mine.items():
            outcome.flags |= result.flags
            for flag, detail in result.details.items():
                outcome.details[flag] = "; ".join(filter(None, [outcome.details.get(flag), f"{name}: {detail}"]))
        if not outcome.flags:
            try:
                outcome.reward = evaluate_formula(grader.calculate_output, outcome.scores)
            except _FormulaError as error:
                outcome.flags.add("other_error")
                outcome.details["other_error"] = f"calculate_output: {error}"
        outcomes.append(outcome)
    return outcomes
