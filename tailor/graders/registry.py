"""The graders an installation has registered, and grading a batch with one of them.

A grader is registered once, by the operator, on the server's machine (``tailor graders create``),
the way a Lambda function is created in an AWS account: a Python file whose source is stored in
the database and run in the sandbox (``tailor.graders.sandbox``), or the URL of an HTTP grader
(``tailor.graders.remote``). It gets an ARN in the original service's Lambda form::

    arn:aws:lambda:{region}:{account}:function:{name}

and that ARN is all an API caller ever gives: an RFT job names
``graderConfig.lambdaGrader.lambdaArn``, exactly as with the original service. Callers of the API
cannot upload code — running code on the server is the operator's decision — they reference a
grader the operator registered. Graders are installation-wide (one "account"), not per principal.

The RFT trainer does::

    info = get_grader(store, lambda_arn)             # NotFound for an unknown ARN
    results = grade(info, batch, settings)           # list[GradeResult], aligned with batch

``grade`` never raises for a grader's misbehaviour: every failure is a 0.0 reward with an error.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from tailor.arns import new_resource_id
from tailor.errors import Conflict, InvalidInput, NotFound
from tailor.graders.contract import GradeResult
from tailor.graders.counting import count_call
from tailor.graders.info import GraderInfo
from tailor.graders.remote import post_batch
from tailor.graders.sandbox import HANDLER, run_python
from tailor.settings import Settings
from tailor.store.db import Store, utcnow
from tailor.store.graders import Grader

# botocore's pattern for graderConfig.lambdaGrader.lambdaArn (the Bedrock model's LambdaArn shape).
LAMBDA_ARN = re.compile(r"arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}(-gov)?-[a-z]+-\d{1}:\d{12}:function:"
                        r"[a-zA-Z0-9-_\.]+(:(\$LATEST|[a-zA-Z0-9-_]+))?")
NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}")  # a Lambda function name
_REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
_ENVIRONMENT_KEY = re.compile(r"[a-zA-Z][a-zA-Z0-9_]+")  # Lambda's environment variable names
TIMEOUT_SECONDS = (1, 900)  # Lambda's limits: 1 s to 15 minutes
MEMORY_MB = (128, 10240)  # and 128 MB to 10 GB


def grader_arn(region: str, account: str, name: str) -> str:
    """The Lambda-form ARN of grader ``name``."""
    if not _REGION.fullmatch(region):
        raise InvalidInput(f"Region {region!r} cannot appear in a Lambda ARN (expected a region such as "
                           "us-east-1); set TAILOR_REGION.")
    return f"arn:aws:lambda:{region}:{account}:function:{name}"


# ---------------------------------------------------------------------------------------------
# Registering


def create_grader(
    store: Store,
    settings: Settings,
    name: str,
    *,
    file: Path | None = None,
    url: str | None = None,
    timeout_seconds: int = 30,
    memory_mb: int = 1024,
    environment: dict[str, str] | None = None,
) -> GraderInfo:
    """Register a Python grader (``file``) or an HTTP grader (``url``) under ``name``.

    The file is checked without running it: it must compile and define ``lambda_handler(event,
    context)`` at its top level. ``Conflict`` when the name is taken; ``InvalidInput`` for the rest.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidInput(f"Grader name {name!r} is not valid: use 1 to 64 letters, digits, '-', '_' or '.'.")
    if (file is None) == (url is None):
        raise InvalidInput("Give a grader either a Python file or a URL (one of the two).")
    _check_range("timeout_seconds", timeout_seconds, TIMEOUT_SECONDS, "s")
    _check_range("memory_mb", memory_mb, MEMORY_MB, "MB")
    environment = dict(environment or {})
    if environment and url is not None:
        raise InvalidInput("Environment variables apply to Python graders only; an HTTP grader has its own.")
    for key, value in environment.items():
        if not isinstance(key, str) or not _ENVIRONMENT_KEY.fullmatch(key) or not isinstance(value, str):
            raise InvalidInput(f"Environment variable {key!r}: names are a letter then letters, digits or '_', "
                               "and values are strings.")
    code = None
    if file is not None:
        code = _read_source(Path(file))
        check_source(code, str(file))
    else:
        _check_url(url)
    arn = grader_arn(settings.region, settings.account_id, name)
    row = Grader(id=new_resource_id(), arn=arn, name=name, kind="python" if code is not None else "http",
                 code=code, url=url, environment=environment,
                 timeout_seconds=timeout_seconds, memory_mb=memory_mb, created_at=utcnow())
    try:
        with store.session() as session:
            if session.scalar(select(Grader.id).where(Grader.name == name)) is not None:
                raise Conflict(f"A grader named {name} already exists; delete it first or choose another name.")
            session.add(row)
    except IntegrityError:  # registered by someone else between the check and the insert
        raise Conflict(f"A grader named {name} already exists; delete it first or choose another name.") from None
    return _info(row)


def check_source(source: str, filename: str) -> None:
    """``InvalidInput`` unless ``source`` compiles and defines ``lambda_handler(event, context)``."""
    try:
        tree = ast.parse(source, filename)
        compile(tree, filename, "exec", dont_inherit=True)
    except SyntaxError as error:
        where = f"line {error.lineno}: " if error.lineno else ""
        raise InvalidInput(f"{filename}: {where}{error.msg}.") from None
    except ValueError as error:  # e.g. a NUL byte
        raise InvalidInput(f"{filename}: {error}.") from None
    for node in _top_level(tree.body):
        if isinstance(node, ast.AsyncFunctionDef) and node.name == HANDLER:
            raise InvalidInput(f"{filename}: {HANDLER} must be a plain function (def, not async def): "
                               "it is called once per batch and must return the results.")
        if isinstance(node, ast.FunctionDef) and node.name == HANDLER:
            if not _takes_two_arguments(node.args):
                raise InvalidInput(f"{filename}: line {node.lineno}: {HANDLER} must accept two arguments "
                                   "(event, context).")
            return
        if _binds(node, HANDLER):
            return  # assigned or imported: its signature cannot be checked without running the file
    raise InvalidInput(f"{filename}: defines no top-level function {HANDLER}(event, context); a grader is "
                       "called as AWS Lambda calls a function (see `tailor graders templates`).")


def _top_level(body: list[ast.stmt]):
    """The module's statements, looking inside top-level if/try blocks too."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            yield from _top_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body + node.orelse + node.finalbody
                                  + [stmt for handler in node.handlers for stmt in handler.body])


def _binds(node: ast.stmt, name: str) -> bool:
    if isinstance(node, ast.Assign):
        return any(isinstance(target, ast.Name) and target.id == name for target in node.targets)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name and node.value is not None
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((alias.asname or alias.name) == name for alias in node.names)
    return False


def _takes_two_arguments(arguments: ast.arguments) -> bool:
    positional = [*arguments.posonlyargs, *arguments.args]
    required = len(positional) - len(arguments.defaults)
    keyword_only_required = any(default is None for default in arguments.kw_defaults)
    return (len(positional) >= 2 or arguments.vararg is not None) and required <= 2 and not keyword_only_required


def _read_source(file: Path) -> str:
    if not file.is_file():
        raise InvalidInput(f"No grader file at {file}.")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text; a grader is a Python source file.") from None


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"Grader URL {url!r} is not an http:// or https:// URL.")


def _check_range(name: str, value: int, bounds: tuple[int, int], unit: str) -> None:
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high} {unit}, not {value!r}.")


# ---------------------------------------------------------------------------------------------
# Looking up, listing, deleting


def get_grader(store: Store, arn_or_name: str) -> GraderInfo:
    """The grader with this ARN (unqualified, or qualified ``:$LATEST``) or name; ``NotFound`` otherwise."""
    with store.session() as session:
        row = session.scalar(select(Grader).where(*_matching(arn_or_name)))
        if row is None:
            raise NotFound(f"Grader not found: {arn_or_name}. Register it on the server's machine with "
                           "`tailor graders create`; `tailor graders list` shows the registered ones.")
        return _info(row)


def list_graders(store: Store) -> list[GraderInfo]:
    """Every registered grader, by name."""
    with store.session() as session:
        return [_info(row) for row in session.scalars(select(Grader).order_by(Grader.name))]


def delete_grader(store: Store, settings: Settings, arn_or_name: str) -> GraderInfo:
    """Forget a grader and remove its files. A training run that already looked it up keeps grading
    with its copy (``GraderInfo`` holds the code)."""
    with store.session() as session:
        row = session.scalar(select(Grader).where(*_matching(arn_or_name)))
        if row is None:
            raise NotFound(f"Grader not found: {arn_or_name}.")
        info = _info(row)
        session.delete(row)
    shutil.rmtree(_grader_dir(settings, info), ignore_errors=True)
    return info


def _matching(arn_or_name: str) -> list:
    if not isinstance(arn_or_name, str) or not arn_or_name:
        raise InvalidInput("Name a grader by its name or its ARN.")
    if not arn_or_name.startswith("arn:"):
        return [Grader.name == arn_or_name]
    if not LAMBDA_ARN.fullmatch(arn_or_name):
        raise InvalidInput(f"{arn_or_name!r} is not a Lambda function ARN "
                           "(arn:aws:lambda:REGION:ACCOUNT:function:NAME).")
    parts = arn_or_name.split(":")
    if len(parts) == 8 and parts[7] != "$LATEST":
        raise NotFound(f"Grader not found: {arn_or_name}. Graders have no published versions or aliases: use "
                       "the ARN without a qualifier, or with :$LATEST.")
    return [Grader.arn == ":".join(parts[:7])]


def _info(row: Grader) -> GraderInfo:
    return GraderInfo(id=row.id, arn=row.arn, name=row.name, kind=row.kind, code=row.code, url=row.url,
                      timeout_seconds=row.timeout_seconds, memory_mb=row.memory_mb, created_at=row.created_at,
                      environment=dict(row.environment or {}))


# ---------------------------------------------------------------------------------------------
# Grading


def grade(info: GraderInfo, samples: list[dict], settings: Settings, *,
          log: Callable[[str], None] | None = None) -> list[GradeResult]:
    """Grade one batch (samples built by ``tailor.graders.contract.sample``, with unique ids):
    one ``GradeResult`` per sample, in order. A grader's failures are zero rewards with errors,
    never exceptions. ``log`` receives what a Python grader wrote to stdout/stderr."""
    ids = [str(item["id"]) for item in samples]
    if len(set(ids)) != len(ids):
        raise ValueError("sample ids must be unique within a batch")
    if info.kind == "http":
        results = post_batch(info.url, samples, timeout_seconds=info.timeout_seconds)
    elif info.kind == "openai":  # an OpenAI grader object, given inline by an OpenAI-API job
        from tailor.graders.openai import grade_samples

        results = grade_samples(info.definition or {}, samples, settings, log=log)
    else:
        results = run_python(grader_file(info, settings), samples, timeout_seconds=info.timeout_seconds,
                             memory_mb=info.memory_mb, function_name=info.name, function_arn=info.arn,
                             environment=info.environment, log=log)
    # The worker grading is not scraped: the call goes to the shared counters (/metrics).
    count_call(settings, grader_kind(info), (result.error for result in results))
    return results


def grader_kind(info: GraderInfo) -> str:
    """The ``kind`` label of grader metrics: lambda (a registered Python grader), http, or an
    OpenAI grader's type — never the grader's name, which a caller chose."""
    if info.kind == "openai":
        return str((info.definition or {}).get("type") or "openai")
    return "lambda" if info.kind == "python" else info.kind


def grader_file(info: GraderInfo, settings: Settings) -> Path:
    """The grader's stored source as a file the sandbox can import (written once; atomically, since
    several jobs may grade with the same grader at once)."""
    path = _grader_dir(settings, info) / "grader.py"
    if path.is_file() and path.read_text(encoding="utf-8") == info.code:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".grader.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(info.code or "", encoding="utf-8")
    os.replace(temporary, path)
    return path


def _grader_dir(settings: Settings, info: GraderInfo) -> Path:
    return settings.home / "graders" / info.id
