"""Routers are matched in the order of ROUTERS: no route may answer another's path."""

import re

from fastapi.routing import APIRoute
from starlette.routing import Match

from service.app import ROUTERS

SAMPLE = "0190a8b2-0000-7000-8000-000000000001"


def test_every_route_answers_its_own_paths_whatever_the_routers_order():
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 50
    checked = 0
    for route in routes:
        path = re.sub(r"\{[^}]+\}", SAMPLE, route.path)
        for method in route.methods:
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            matching = [r for r in routes if r.matches(scope)[0] == Match.FULL]
            # Only the route itself, or routes of its own router listed before it (which
            # keep their order wherever the router goes).
            owner = next(router for router in ROUTERS if route in router.routes)
            others = [r for r in matching if r is not route and r not in owner.routes]
            assert not others, f"{method} {route.path} is also answered by {others[0].path}"
            checked += 1
    assert checked >= len(routes)
