"""The console's Models page."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from tailor.api.console.auth import signed_in
from tailor.api.console.pages import ConsoleRoute, render
from tailor.services.console_sessions import ConsoleSession

router = APIRouter(route_class=ConsoleRoute)


@router.get("/console/models", include_in_schema=False)
def index(request: Request, session: ConsoleSession = Depends(signed_in)) -> Response:
    return render(request, "models/index.html")
