"""The web console at ``/console``: the original service's console workflows, in a browser.

Server-rendered pages (Jinja2) with a little plain JavaScript, every asset shipped in the package.
Each page is a thin module over the same services the APIs call — the console adds no behaviour
of its own — and sees only the signed-in principal's resources:

    auth.py         sign-in, sessions, CSRF            pages.py      templates, errors, headers
    datasets.py     upload, validate, training view    jobs.py       list, create, watch, stop
    models.py       custom models, deployments         playground.py chat and compare, streamed
    evaluations.py  evaluation jobs, Evals runs        graders.py    grader objects: edit, test

Routes under ``/console/api/`` answer JSON for the page scripts; the others answer HTML.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from tailor.api.console import (
    auth,
    datasets,
    evaluations,
    graders,
    jobs,
    models,
    playground,
)
from tailor.services.console_sessions import Sessions

STATIC = Path(__file__).parent / "static"


def add_routes(app: FastAPI) -> None:
    app.state.console_sessions = Sessions(app.state.store, app.state.settings)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console.static")
    app.add_api_route("/console", lambda: RedirectResponse("/console/jobs", status_code=303),
                      include_in_schema=False)
    for page in (auth, datasets, jobs, models, playground, evaluations, graders):
        app.include_router(page.router)
