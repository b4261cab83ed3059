"""Request bodies as typed pydantic models, and their validation errors in words that name the field.

Every JSON body an inference route reads (InvokeModel's native bodies, Converse, OpenAI chat
completions) is a model deriving ``BodyModel``: strict types (no ``"1"`` for 1, no 1.0 for an
integer, no ``true`` for a number), unknown keys refused, limits declared on the fields.
``validate(model, data)`` returns the model or raises one ``InvalidFields`` listing every problem
as ``(path, problem)``, the path written as the wire JSON names it (``messages[1].content[0].type``).

pydantic's own messages ("Input should be less than or equal to 1") give neither the whole range
nor the nearest allowed key, so ``_explain`` words each error type these models raise, reading the
field's declared bounds from the model. A check pydantic cannot declare (the order of turns, a
refused feature) raises ``fail(text)``: its text is used as it is, and it may point below the
field it belongs to (``at``); ``fail_all`` reports several such problems at once.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import annotated_types
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from tailor.errors import InvalidFields, join_path, show_value
from tailor.wire.request_json import INTEGER_LIMITS, key_path

Model = TypeVar("Model", bound=BaseModel)

# Bounds that are the wire format's (a Java int's or long's), not the field's: named only when a
# value passes them, since "an integer of at least 1" says all a caller needs until then.
_IMPLICIT_MINIMA = {low for low, _ in INTEGER_LIMITS.values()}
_IMPLICIT_MAXIMA = {high for _, high in INTEGER_LIMITS.values()}
_INTEGER_ERRORS = {"int_type", "int_parsing", "int_from_float"}
_BOUND_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
_SIMPLE = {"string_type": "must be a string", "bool_type": "must be true or false", "list_type": "must be a list",
           "dict_type": "must be an object", "model_type": "must be an object",
           "model_attributes_type": "must be an object", "float_type": "must be a number"}


# Why features Tailor's models lack are refused, in every dialect's words.
TEXT_ONLY = "not supported: Tailor's models take text only"
NO_TOOLS = "tools are not supported: Tailor's models answer with text only"


class BodyModel(BaseModel):
    """A request body or a part of one, as JSON gives it: exact types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def fail(text: str, *, at: str = "") -> PydanticCustomError:
    """A problem to raise from a validator: ``text`` as it is, about the field or ``at`` below it
    (``"type"``, ``"[2].role"``)."""
    return PydanticCustomError("tailor", "{text}", {"text": text, "at": at})


def fail_all(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """Several problems found by one validator, each ``(path below the field, text)``."""
    return PydanticCustomError("tailor_many", "{count} problems", {"count": len(problems), "problems": problems})


def refused(reason: str, *, allowed: tuple = (None,)) -> Any:
    """The type of a field Tailor does not support: any value but those in ``allowed`` (which say
    "not used", like ``null`` or ``[]``) is refused with ``reason``."""
    def refuse(value: Any) -> Any:
        if any(type(value) is type(ok) and value == ok for ok in allowed):
            return value
        raise fail(reason)

    return Annotated[Any, AfterValidator(refuse)]


def _not_blank(text: str) -> str:
    if not text.strip():
        raise fail("must not be blank")
    return text


# Text that must hold something: a prompt, a Converse text block.
NonBlank = Annotated[str, AfterValidator(_not_blank)]
# A stop sequence: an empty one would stop before the first token.
NonEmpty = Annotated[str, Field(min_length=1)]


def validate(model: type[Model], data: Any, *, context: dict | None = None) -> Model:
    """``data`` as ``model``, or one ``InvalidFields`` naming every problem."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise InvalidFields([found for problem in error.errors(include_url=False)
                             for found in _explain(model, problem)]) from None


# ---------------------------------------------------------------- errors in words


def _explain(model: type[BaseModel], error: Mapping[str, Any]) -> list[tuple[str, str]]:
    loc, kind, ctx = tuple(error["loc"]), error["type"], error.get("ctx") or {}
    if kind == "tailor_many":
        return [(join_path(_path(loc), at) or "body", text) for at, text in ctx["problems"]]
    if kind == "tailor":
        return [(join_path(_path(loc), ctx["at"]) or "body", ctx["text"])]
    path = _path(loc) or "body"
    annotation, bounds, parent = _locate(model, loc)
    got = f", got {show_value(error.get('input'))}"
    if kind == "missing":
        values = get_args(annotation) if get_origin(annotation) is Literal else ()
        return [(path, f"required (use {values[0]!r})" if len(values) == 1 else "required")]
    if kind == "extra_forbidden":
        return [(path, "unknown field" + _allowed_hint(str(loc[-1]), parent))]
    if kind in _INTEGER_ERRORS or kind in _BOUND_ERRORS:
        integral = kind in _INTEGER_ERRORS or annotation is int
        value = error.get("input")
        return [(path, f"must be {'an integer' if integral else 'a number'}{_range(bounds, value)}{got}")]
    if kind == "float_type":
        return [(path, f"must be a number{_range(bounds, None)}{got}")]
    if kind == "literal_error":
        return [(path, f"must be {ctx['expected']}{got}")]
    if kind in ("too_short", "string_too_short"):
        noun = "items" if kind == "too_short" else "characters"
        minimum = ctx.get("min_length", 1)
        return [(path, "must not be empty" if minimum == 1 else f"must have at least {minimum} {noun}")]
    if kind in ("too_long", "string_too_long"):
        noun = "items" if kind == "too_long" else "characters"
        actual = ctx.get("actual_length")
        return [(path, f"at most {ctx.get('max_length')} {noun}" + (f", got {actual}" if actual is not None else ""))]
    if kind in _SIMPLE:
        whole_body = not loc and kind in ("model_type", "dict_type")
        return [(path, ("must be a JSON object" if whole_body else _SIMPLE[kind]) + got)]
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return [(path, message)]


def _path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else key_path(path, part)
    return path


def _allowed_hint(key: str, parent: type[BaseModel] | None) -> str:
    if parent is None:
        return ""
    allowed = sorted(parent.model_fields)
    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"


def _number(value: float) -> str:
    return repr(value) if isinstance(value, int) else f"{value:g}"


def _range(bounds: dict[str, float], value: Any) -> str:
    """`` between 0 and 1`` / `` of at least 1`` / ``""`` from the field's bounds; an implicit
    maximum (a Java int's) only when ``value`` is past it."""
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if low in _IMPLICIT_MINIMA and not (number and value < low):
        low = None
    if high in _IMPLICIT_MAXIMA and not (number and value > high):
        high = None
    if low is not None and high is not None:
        return f" between {_number(low)} and {_number(high)}"
    if low is not None:
        return f" of at least {_number(low)}"
    return f" of at most {_number(high)}" if high is not None else ""


def _locate(model: type[BaseModel], loc: tuple) -> tuple[Any, dict[str, float], type[BaseModel] | None]:
    """``(type, bounds, innermost model)`` at ``loc`` in ``model``: what an error there is about.

    The type is None where ``loc`` leaves the models (an unknown key); the innermost model is then
    the one that lacks the key.
    """
    annotation: Any = model
    parent: type[BaseModel] | None = None
    for part in loc:
        annotation, _ = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            parent = annotation
            field = annotation.model_fields.get(str(part))
            if field is None:
                return None, {}, parent
            annotation = _field_type(field)
        elif get_origin(annotation) in (list, tuple) and isinstance(part, int):
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return None, {}, parent
    annotation, bounds = _unwrap(annotation)
    return annotation, bounds, parent


def _field_type(field: FieldInfo) -> Any:
    return Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation


def _unwrap(annotation: Any) -> tuple[Any, dict[str, float]]:
    """``annotation`` without ``Annotated`` layers and ``| None``, and the bounds those layers declare."""
    bounds: dict[str, float] = {}
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation, *metadata = get_args(annotation)
            for item in metadata:
                for constraint in (item.metadata if isinstance(item, FieldInfo) else [item]):
                    if isinstance(constraint, (annotated_types.Ge, annotated_types.Gt, annotated_types.Le,
                                               annotated_types.Lt)):
                        name = type(constraint).__name__.lower()
                        bounds.setdefault(name, getattr(constraint, name))
        elif origin in (typing.Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) != 1:
                return annotation, bounds
            annotation = options[0]
        else:
            return annotation, bounds
