"""The console's Graders page: the graders an operator registered (read-only), the Lambda-style
templates to copy, and OpenAI grader objects to write from a starter, edit, validate and test.

Registered graders are the operator's (``tailor graders create`` on the server's machine: running
code there is the operator's decision, docs/architecture.md), so the page shows them and the
command, and creates none. Grader *objects* are the OpenAI fine-tuning API's
(``/v1/fine_tuning/alpha/graders/validate`` and ``/run``): the two JSON routes here are those
routes for a signed-in visitor, on the same functions — ``tailor.graders.openai.validate`` /
``run``, with judges served by this server's engine (``api.openai.graders.served_judges``).
A draft lives in the visitor's browser (localStorage ``tailor.grader-drafts``, which the Jobs
page's reinforcement form reads too); the server keeps none.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tailor.api.console.auth import checked, signed_in
from tailor.api.console.pages import ConsoleRoute, render
from tailor.api.openai.graders import served_judges
from tailor.errors import InvalidInput
from tailor.graders import openai as openai_graders
from tailor.graders import registry, template_files
from tailor.services.console_sessions import ConsoleSession

router = APIRouter(route_class=ConsoleRoute)

DRAFTS_KEY = "tailor.grader-drafts"  # localStorage: {name: grader definition}; the Jobs page reads it too

# Starting points for a grader object, one per kind (the SDK's shapes). ``item.question`` /
# ``item.answer`` are the row fields the Evaluations page's rows carry.
STARTERS: dict[str, dict[str, Any]] = {
    "string_check": {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                     "reference": "{{item.answer}}", "operation": "eq"},
    "text_similarity": {"type": "text_similarity", "name": "similar", "input": "{{sample.output_text}}",
                        "reference": "{{item.answer}}", "evaluation_metric": "rouge_l"},
    "score_model": {"type": "score_model", "name": "judge", "model": "tailor.tiny", "range": [0, 1],
                    "input": [{"role": "system", "content": "You grade answers to questions about Tailor. Reply "
                                                            "with a score from 0 to 1: 1 when the answer states "
                                                            "the facts of the reference, 0 when it does not."},
                              {"role": "user", "content": "Question: {{item.question}}\nReference: "
                                                          "{{item.answer}}\nAnswer: {{sample.output_text}}"}]},
    "python": {"type": "python", "name": "overlap", "source": (
        "def grade(sample, item) -> float:\n"
        "    \"\"\"The share of the reference's words that the answer uses.\"\"\"\n"
        "    reference = set(item[\"answer\"].lower().split())\n"
        "    said = set(sample[\"output_text\"].lower().split())\n"
        "    return len(reference & said) / max(len(reference), 1)\n")},
    "multi": {"type": "multi", "name": "exact-and-similar", "calculate_output": "0.5 * exact + 0.5 * similar",
              "graders": {"exact": {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                                    "reference": "{{item.answer}}", "operation": "eq"},
                          "similar": {"type": "text_similarity", "name": "similar", "input": "{{sample.output_text}}",
                                      "reference": "{{item.answer}}", "evaluation_metric": "rouge_l"}}},
}
STARTER_NOTES = {
    "string_check": "1 when the answer equals (or contains) the reference, else 0",
    "text_similarity": "how close the answer is to the reference (ROUGE, BLEU, fuzzy match…), 0–1",
    "score_model": "a model as judge with written instructions: it replies with a score",
    "python": "your own grade(sample, item) -> float, run in the grader sandbox",
    "multi": "several graders combined by a formula",
}


def _templates() -> list[dict[str, str]]:
    """The Lambda-style templates: name, summary, source and the command that registers a copy."""
    return [{"name": name, "summary": template_files.template_summary(name),
             "source": template_files.template_path(name).read_text(encoding="utf-8"),
             "copy_command": f"tailor graders templates --copy {name} {name}.py",
             "command": f"tailor graders create {name.replace('_', '-')} --file {name}.py"}
            for name in template_files.template_names()]


@router.get("/console/graders", include_in_schema=False)
def index(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    registered = registry.list_graders(request.app.state.store)
    return render(request, "graders/index.html", {
        "registered": registered, "templates": _templates(), "starters": STARTERS, "notes": STARTER_NOTES,
        "drafts_key": DRAFTS_KEY})


def _invalid(error: openai_graders.InvalidGrader) -> JSONResponse:
    """Every problem of a grader by its JSON path (``grader.input``, ``grader.graders.x.source``)."""
    problems = {path: problem for path, problem in error.problems}
    return JSONResponse({"error": {"message": error.message, "field": error.param, "fields": problems}},
                        status_code=400)


async def _body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("The body must be JSON: {\"grader\": {...}}.") from None
    if not isinstance(body, dict) or not isinstance(body.get("grader"), dict):
        raise InvalidInput("grader: required, a grader object.", param="grader")
    return body


@router.post("/console/api/graders/validate", include_in_schema=False)
async def validate(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    """The grader as the server reads it (normalized), or every problem by path."""
    body = await _body(request)
    try:
        grader = await run_in_threadpool(openai_graders.validate, body["grader"], request.app.state.settings)
    except openai_graders.InvalidGrader as error:
        return _invalid(error)
    return JSONResponse({"grader": openai_graders.to_json(grader)})


@router.post("/console/api/graders/run", include_in_schema=False)
async def run(request: Request, session: ConsoleSession = Depends(checked)) -> Response:
    """The grader tried on one answer and item: ``GraderRunResponse`` (reward, errors, sub-rewards).
    A judge is asked with the visitor's rights, through the server's engine."""
    body = await _body(request)
    sample, item = body.get("model_sample"), body.get("item")
    if not isinstance(sample, str):
        raise InvalidInput("model_sample: the answer to grade, a string.", param="model_sample")
    if item is not None and not isinstance(item, dict):
        raise InvalidInput("item: a JSON object (the dataset row the answer is graded against).", param="item")
    judges = served_judges(request.app, asyncio.get_running_loop(), session.principal)
    try:
        result = await run_in_threadpool(openai_graders.run, body["grader"], sample_text=sample, item=item,
                                         settings=request.app.state.settings, judges=judges)
    except openai_graders.InvalidGrader as error:
        return _invalid(error)
    return JSONResponse(result)
