"""Every route of the review service is guarded: it declares who calls it (`Authenticated`) and the permission it
asks (`ROUTE_PERMISSIONS`). A route added without either fails here, before any stack runs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from herald_core.auth.callers import authenticated
from herald_review.api import ROUTE_PERMISSIONS, add_json_api
from herald_review.web import add_web_ui


def _depends_on_the_caller(dependant: Dependant) -> bool:
    return any(d.call is authenticated or _depends_on_the_caller(d) for d in dependant.dependencies)


def _served() -> dict[tuple[str, str], APIRoute]:
    http = FastAPI()
    nothing: Any = None  # the routes are only declared here, never called
    add_json_api(http, nothing, nothing, nothing, ())
    add_web_ui(http, nothing, nothing)
    return {(method, r.path): r for r in http.routes if isinstance(r, APIRoute) for method in r.methods}


def test_every_route_has_a_permission_and_knows_its_caller() -> None:
    served = _served()
    assert set(served) == set(ROUTE_PERMISSIONS), set(served) ^ set(ROUTE_PERMISSIONS)
    anonymous = [f"{method} {path}" for (method, path), r in served.items() if not _depends_on_the_caller(r.dependant)]
    assert not anonymous, f"routes that do not know their caller: {anonymous}"


def test_a_route_without_a_caller_would_be_caught() -> None:
    http = FastAPI()

    @http.post("/v1/reviews/{review_id}/undo")
    async def undo(review_id: str) -> None:
        del review_id

    (route,) = [r for r in http.routes if isinstance(r, APIRoute)]
    assert not _depends_on_the_caller(route.dependant)
    assert ("POST", route.path) not in ROUTE_PERMISSIONS
