"""A ``multi`` grader's ``calculate_output``: the formula over its graders' names.

``_formula`` parses and checks it against a whitelist over Python's ``ast`` (numbers, names,
``+ - * / ** ^``, ``min max abs sqrt log exp floor ceil``), and ``evaluate_formula`` computes it;
nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable

FORMULA_LIMIT = 1000  # characters of calculate_output


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
