import json
from pathlib import Path

from service.app import create_app
from service.cli import openapi_text
from tests.conftest import settings_for_tests

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_spec_matches_the_app():
    current = openapi_text(create_app(settings_for_tests()))
    assert SPEC.read_text() == current, "openapi/openapi.json is stale: run `make openapi`"


def test_spec_lists_problem_responses():
    spec = json.loads(SPEC.read_text())
    op = spec["paths"]["/v1/programs"]["post"]
    assert "application/problem+json" in op["responses"]["422"]["content"]
