"""What one sale costs the database: its round trips, counted at the driver."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from asyncpg.prepared_stmt import PreparedStatement
from sqlalchemy import event, text

from service.conversions.judging import facts_terms_and_month
from service.fraud import repository as facts
from service.fraud.rules import Counted
from service.kit.driver import Prepared
from service.kit.ids import new_id
from service.ledger import months
from service.ledger.service import TERMS_WIDTH
from service.tracking.clickid import ClickIdSigner
from tests.conversions.factories import add_link, click_id, sale, setup
from tests.fraud.factories import click
from tests.links.factories import create_link


@asynccontextmanager
async def statements(app: Any, monkeypatch: Any) -> AsyncIterator[list[str]]:
    """The statements the app's pooled connections send meanwhile, in order."""
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    def attach(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(log)

    def detach(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.driver_connection.remove_query_logger(log)

    # Statements go through asyncpg's query loggers when run on the connection, and through
    # PreparedStatement.fetch when SQLAlchemy runs them.
    fetch = PreparedStatement.fetch

    async def logged_fetch(self: PreparedStatement, *args: Any, **kwargs: Any) -> Any:
        sent.append(self.get_query())
        return await fetch(self, *args, **kwargs)

    monkeypatch.setattr(PreparedStatement, "fetch", logged_fetch)
    pool = app.state.engine.sync_engine.pool
    event.listen(pool, "checkout", attach)
    event.listen(pool, "checkin", detach)
    try:
        yield sent
        # asyncpg hands each statement to the loggers with call_soon: let the loop run them.
        await asyncio.sleep(0)
    finally:
        event.remove(pool, "checkout", attach)
        event.remove(pool, "checkin", detach)
        monkeypatch.undo()


async def test_a_sale_by_click_id_is_one_transaction_of_few_statements(
    app, client, admin, monkeypatch
):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    # Warm: the key, the program and the agreement's statements are cached after one sale.
    first = sale(program, click_id=click_id(app, link))
    assert (await client.post("/v1/conversions", json=first, headers=admin)).status_code == 201
    async with statements(app, monkeypatch) as sent:
        body = sale(program, click_id=click_id(app, link))
        r = await client.post("/v1/conversions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    assert sent[0].startswith("BEGIN") and sent[-1] == "COMMIT;", sent
    # BEGIN, link and partner, the fraud facts with the month's lock and the agreements,
    # the conversion with its audit row, its entries and the month's new totals, COMMIT.
    assert len(sent) == 5, sent


async def test_a_customers_first_sale_binds_it_in_the_same_statement(
    app, client, admin, monkeypatch
):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    first = sale(program, click_id=click_id(app, link), customer_id="warm")
    assert (await client.post("/v1/conversions", json=first, headers=admin)).status_code == 201
    async with statements(app, monkeypatch) as sent:
        body = sale(program, click_id=click_id(app, link), customer_id="new")
        r = await client.post("/v1/conversions", json=body, headers=admin)
    assert r.status_code == 201, r.text
    # A plain sale's five, and the customer's upsert; the binding goes in with the insert.
    assert len(sent) == 6, sent
    assert sum("UPDATE customers" in s for s in sent) == 1, sent


async def test_a_refund_is_one_transaction_of_few_statements(app, client, admin, monkeypatch):
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    body = sale(program, click_id=click_id(app, link))
    assert (await client.post("/v1/conversions", json=body, headers=admin)).status_code == 201
    refund = {"program_id": program["id"], "order_id": body["order_id"], "amount": "10.00"}
    first = await client.post("/v1/refunds", json={**refund, "refund_id": "r-1"}, headers=admin)
    assert first.status_code == 201, first.text
    async with statements(app, monkeypatch) as sent:
        r = await client.post("/v1/refunds", json={**refund, "refund_id": "r-2"}, headers=admin)
    assert r.status_code == 201, r.text
    assert len(r.json()["reversals"]) == 1, r.text
    assert sent[0].startswith("BEGIN") and sent[-1] == "COMMIT;", sent
    # BEGIN, the sale locked, its refund id looked up under that lock, what the reversal
    # reads (the month locked), then the refund's row, its reversal with the month's new
    # totals, the sale's refunded total and the audit event in one statement, COMMIT.
    assert len(sent) == 6, sent
    # As stored: its replay reads it back.
    again = await client.post("/v1/refunds", json={**refund, "refund_id": "r-2"}, headers=admin)
    assert again.status_code == 200 and again.json() == r.json()


def _sale_facts(
    app: Any,
    token: str,
    program: dict[str, Any],
    partner: dict[str, Any],
    needs: frozenset[str],
    counted: Counted,
) -> facts.Facts:
    """The fraud facts' statement for a sale now, by the click of `token`."""
    secrets = app.state.secrets
    clicked = ClickIdSigner(secrets.click_keys, secrets.click_key_id).verify(token)
    query = facts.facts_query(
        needs,
        click_id=clicked.click_uuid,
        clicked_at=clicked.clicked_at,
        conversion_id=new_id(),
        partner_id=uuid.UUID(partner["id"]),
        program_id=uuid.UUID(program["id"]),
        occurred_at=datetime.now(UTC),
        counted=counted,
    )
    assert query is not None
    return query


async def test_the_facts_and_terms_of_a_sale_are_planned_once_per_connection(app, client, admin):
    # clicks is partitioned by month: with only parameters to prune by, PostgreSQL's generic
    # plan reaches into every partition, and it planned the statement again on every sale.
    program, partner = await setup(client, admin)
    link = await create_link(client, admin, program, partner)
    token = await click(client, link["code"], referer="https://blog.example/post")
    query = _sale_facts(
        app,
        token,
        program,
        partner,
        frozenset({"click", "flood", "velocity"}),
        Counted(visitor_clicks=21, partner_conversions=100),
    )
    month = datetime.now(UTC).date().replace(day=1)
    params = {
        **query.params,
        **months.key(query.params["partner_id"], query.params["program_id"], month, "sale"),
    }
    statement = facts_terms_and_month(query.shape)
    async with app.state.sessionmaker() as session:
        for _ in range(12):
            rows = await statement.fetch(session, params)
            stored = facts.facts_of(query, rows[0][TERMS_WIDTH:])
            assert stored.referrer_host == "blog.example" and stored.visitor_clicks_before == 0
            assert stored.partner_conversions_before == 0
            assert len(rows) == 1 and rows[0][1] is not None  # the pair's one agreement
        plans = (
            await session.execute(
                text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                    " WHERE statement LIKE '%FROM clicks AS earlier%'"
                    " AND statement NOT LIKE '%pg_prepared_statements%'"
                )
            )
        ).all()
        await session.rollback()
    # The twelve runs here (the connection may hold other shapes, run by other sales):
    # PostgreSQL tried five custom plans before it weighed the generic one, then kept it.
    assert (7, 5) in {tuple(row) for row in plans}, plans


async def test_the_fraud_facts_count_no_further_than_the_rules_need(app, client, admin):
    # A visitor's clicks in the hour and the partner's sales in the hour are counted up to
    # where the rules' limits decide (rules.counted), not all of them, by every sale.
    program, partner = await setup(client, admin)
    link = await add_link(app, program["id"], partner["id"])
    tokens = [click_id(app, link) for _ in range(5)]
    for token in tokens[:4]:
        body = sale(program, click_id=token)
        assert (await client.post("/v1/conversions", json=body, headers=admin)).status_code == 201
    async with app.state.sessionmaker() as session:
        read = {}
        for cap in (2, 100):
            counted = Counted(visitor_clicks=cap, partner_conversions=cap)
            query = _sale_facts(app, tokens[4], program, partner, frozenset({"velocity"}), counted)
            row = await Prepared(facts.facts_select(query.shape)).fetchrow(session, query.params)
            assert row is not None
            read[cap] = facts.facts_of(query, row).partner_conversions_before
    assert read == {2: 2, 100: 4}
