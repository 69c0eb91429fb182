"""What PostgreSQL plans for the money path: each statement once per connection, not on
every sale (planning a statement can cost more than running it)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.conftest import make_key, serving, settings_for_tests
from tests.conversions.factories import add_link, add_promo, click_id, sale, setup

RUNS = 12


async def test_no_statement_of_the_money_path_is_planned_on_every_call(fresh_database_url):
    # One pooled connection: every request below runs on it, so its prepared statements
    # show how often each was planned.
    settings = settings_for_tests(db_pool_size=1, db_max_overflow=0)
    async with serving(settings, fresh_database_url) as served, served.client() as client:
        app = served.app
        admin = await make_key(app, "admin")
        rules = [{"rule": "velocity", "action": "hold", "max_per_hour": 1000}]
        program, partner = await setup(client, admin, fraud_rules=rules)
        link = await add_link(app, program["id"], partner["id"])
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        rate = {"base_currency": "EUR", "quote_currency": "USD", "rate": "1.08", "date": yesterday}
        assert (await client.post("/v1/fx-rates", json=rate, headers=admin)).status_code == 201
        for n in range(RUNS):
            bodies = [
                # By click, by promo code, in another currency, a customer's first sale
                # and its renewal.
                sale(program, click_id=click_id(app, link)),
                sale(program, promo_code=await add_promo(app, program["id"], partner["id"])),
                sale(program, click_id=click_id(app, link), currency="EUR"),
                sale(program, click_id=click_id(app, link), customer_id=f"c-{n}"),
                sale(program, customer_id=f"c-{n}"),
            ]
            for body in bodies:
                r = await client.post("/v1/conversions", json=body, headers=admin)
                assert r.status_code == 201, r.text
                assert r.json()["attribution"]["partner_id"] == partner["id"], r.text
            refund = {
                "program_id": program["id"],
                "order_id": bodies[0]["order_id"],
                "refund_id": f"r-{n}",
                "amount": "10.00",
            }
            assert (await client.post("/v1/refunds", json=refund, headers=admin)).status_code == 201
        async with app.state.sessionmaker() as session:
            plans = (
                await session.execute(
                    text(
                        "SELECT statement, generic_plans, custom_plans"
                        " FROM pg_prepared_statements WHERE NOT from_sql"
                    )
                )
            ).all()
    ran = [p for p in plans if p.generic_plans + p.custom_plans >= RUNS]
    assert len(ran) >= 8, plans  # the sales' and the refunds' statements
    # PostgreSQL plans a statement five times before it weighs a generic plan.
    replanned = [p.statement for p in plans if p.custom_plans > 5]
    assert replanned == [], replanned
