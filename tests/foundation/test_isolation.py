"""Each test module has a database of its own: unfiltered lists and sums hold only what the
module made, whatever ran before it."""

from __future__ import annotations

from pathlib import Path

from service.kit.money import format_minor
from tests.conftest import database_name
from tests.factories import create_program
from tests.payouts.factories import add_entry, setup

ROOT = Path(__file__).resolve().parents[2]

MADE: set[str] = set()


async def programs(client, admin) -> set[str]:
    r = await client.get("/v1/programs", params={"limit": 200}, headers=admin)
    assert r.status_code == 200 and r.json()["next_cursor"] is None, r.text
    return {p["id"] for p in r.json()["items"]}


async def test_an_unfiltered_list_holds_only_what_this_module_made(client, admin):
    for _ in range(2):
        MADE.add((await create_program(client, admin))["id"])
    assert await programs(client, admin) == MADE


async def test_tests_of_one_module_share_its_database(client, admin, database_url, app):
    MADE.add((await create_program(client, admin))["id"])
    assert await programs(client, admin) == MADE
    assert app.state.engine.url.database == database_name(database_url)


INNER = """
from tests.foundation.test_isolation import one_module


async def test_{name}(client, admin, finance, app):
    await one_module(client, admin, finance, app, {amount})
"""


async def one_module(client, admin, finance, app, amount: int) -> None:
    """What one module of the inner run checks: only its program and its entry are there."""
    prog, (partner,) = await setup(client, admin)
    await add_entry(app, partner["id"], prog["id"], amount)
    assert await programs(client, admin) == {prog["id"]}
    r = await client.get("/v1/ledger/reconciliation", headers=finance)
    assert r.json()["totals"]["USD"]["entries_total"] == format_minor(amount, "USD"), r.text


def test_two_modules_never_meet(pytester, pg_server, monkeypatch):
    # A run of its own with two modules on this run's server; under one shared database
    # the second module would see the first one's program and entry.
    monkeypatch.setenv("TEST_DATABASE_URL", pg_server.admin_url)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini(
        "[pytest]\n"
        "asyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\n"
    )
    pytester.makeconftest('pytest_plugins = ["tests.conftest"]')
    for name, amount in (("first", 1200), ("second", 3400)):
        pytester.makepyfile(**{f"test_{name}": INNER.format(name=name, amount=amount)})
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=600)
    result.assert_outcomes(passed=2)
