"""The package layering: what sits below what, checked on the imports themselves."""

from __future__ import annotations

import ast
from pathlib import Path

from fastapi import FastAPI

from service.app import create_asgi
from tests.conftest import settings_for_tests

SERVICE = Path(__file__).resolve().parents[2] / "service"


def _imports(path: Path) -> set[str]:
    """Every service module a file imports, at any depth (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "service" or name.startswith("service.")}


def _modules() -> dict[str, set[str]]:
    return {str(path.relative_to(SERVICE.parent)): _imports(path) for path in SERVICE.rglob("*.py")}


def _importers(prefix: str) -> set[str]:
    return {
        path
        for path, names in _modules().items()
        if any(name == prefix or name.startswith(prefix + ".") for name in names)
    }


def test_only_the_composition_and_ops_import_the_redirect() -> None:
    outside = {p for p in _importers("service.redirect") if not p.startswith("service/redirect/")}
    # The app and the CLI (its click-loader command) compose the redirect; health reports
    # on its click writer.
    assert outside <= {"service/app.py", "service/cli.py", "service/health/api.py"}, outside


def test_tracking_sits_below_every_domain() -> None:
    for path, names in _modules().items():
        if path.startswith("service/tracking/"):
            assert all(n.startswith(("service.kit", "service.tracking")) for n in names), path


def test_secrets_store_does_not_import_the_redirect() -> None:
    assert not any(n.startswith("service.redirect") for n in _modules()["service/secrets_store.py"])


def test_demo_is_handed_the_app_and_the_app_never_imports_the_demo() -> None:
    modules = _modules()
    assert not any(n.startswith("service.app") for n in modules["service/demo.py"])
    assert not any(n.startswith("service.demo") for n in modules["service/app.py"])


def test_what_is_served_poses_as_no_fastapi_app() -> None:
    served = create_asgi(settings_for_tests(), database_url="postgresql://unused/")
    assert isinstance(served.fastapi, FastAPI)
    for name in ("state", "router", "openapi"):
        assert not hasattr(served, name), name
