"""The shapes of OpenAI's grader objects, as frozen pydantic models.

One class per grader type (``StringCheckGrader`` ... ``MultiGrader``), the ``InputMessage`` and
``SamplingParams`` they hold, and ``InvalidGrader``, the error that names each bad field's JSON
path. A python grader's ``source`` is checked here (it must compile and define ``grade``), and a
message's content is reduced to text (images and audio are refused). What the shapes cannot say
(templates, the judge model, the formula) ``validation`` checks.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tailor.errors import InvalidInput

GRADER_TYPES = ("string_check", "text_similarity", "python", "score_model", "label_model", "multi")
METRICS = ("cosine", "fuzzy_match", "bleu", "gleu", "meteor",
           "rouge_1", "rouge_2", "rouge_3", "rouge_4", "rouge_5", "rouge_l")
PYTHON_SOURCE_LIMIT = 256 * 1024  # OpenAI's limit on a python grader's source, in bytes


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
