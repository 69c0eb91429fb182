"""Random sequences through the real API keep the ledger equal to the pure month function."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from service.agreements.terms import validate_terms
from service.commissions.engine import month_total
from service.commissions.state import MonthState
from service.kit.money import round_money
from service.models import CommissionEntry
from tests.conversions.factories import add_link, click_id, sale, setup
from tests.factories import create_partner, unique

TERMS = {
    "rules": [
        {
            "event": "sale",
            "type": "percent",
            "tiers": [
                {"from": "0", "percent": "7.5"},
                {"from": "500.00", "percent": "12"},
                {"from": "1200.00", "percent": "15"},
            ],
            "monthly_cap": "400.00",
        }
    ],
    "parent_override_percent": "3",
}

amounts = st.integers(min_value=1, max_value=90_000).map(lambda c: Decimal(c) / 100)
operation = st.one_of(
    st.tuples(st.just("sale"), amounts),
    st.tuples(st.just("refund"), st.integers(0, 20), st.integers(1, 100)),
    st.tuples(st.just("reject"), st.integers(0, 20)),
    st.tuples(st.just("review"), st.integers(0, 20)),
    st.tuples(st.just("approve"), st.integers(0, 20)),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, min_size=1, max_size=12))
async def test_ledger_matches_the_month_function(client, app, admin, ops):
    parent = await create_partner(client, admin)
    child = await create_partner(client, admin, parent_id=parent["id"])
    program, partner = await setup(client, admin, terms=TERMS, partner=child)
    link = await add_link(app, program["id"], partner["id"])
    # All in one calendar month, whatever day the test runs.
    at = datetime.now(UTC).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    if at > datetime.now(UTC):
        at -= timedelta(days=1)
    sales: list[dict] = []  # {id, order_id, amount, refunded, status}
    for op in ops:
        if op[0] == "sale":
            body = sale(
                program,
                amount=f"{op[1]:.2f}",
                click_id=click_id(app, link, at - timedelta(hours=1)),
                occurred_at=at.isoformat(),
            )
            r = await client.post("/v1/conversions", json=body, headers=admin)
            assert r.status_code == 201, r.text
            sales.append(
                {
                    "id": r.json()["id"],
                    "order_id": body["order_id"],
                    "amount": op[1],
                    "refunded": Decimal(0),
                    "status": "accepted",
                }
            )
            continue
        if not sales:
            continue
        target = sales[op[1] % len(sales)]
        if op[0] == "refund":
            remaining = target["amount"] - target["refunded"]
            share = round_money(remaining * op[2] / 100, "USD")
            r = await client.post(
                "/v1/refunds",
                json={
                    "program_id": program["id"],
                    "order_id": target["order_id"],
                    "refund_id": unique("r"),
                    "amount": f"{share:.2f}",
                },
                headers=admin,
            )
            if target["status"] == "rejected":
                assert r.status_code == 409
            elif share <= 0:
                assert r.status_code == 422
            else:
                assert r.status_code == 201, r.text
                target["refunded"] += share
        else:
            r = await client.post(f"/v1/conversions/{target['id']}/{op[0]}", json={}, headers=admin)
            allowed = {
                "reject": {"accepted", "review"},
                "review": {"accepted"},
                "approve": {"review"},
            }
            if target["status"] in allowed[op[0]]:
                assert r.status_code == 200, r.text
                target["status"] = {
                    "reject": "rejected",
                    "review": "review",
                    "approve": "accepted",
                }[op[0]]
            else:
                assert r.status_code == 409

    net = sum((s["amount"] - s["refunded"] for s in sales if s["status"] != "rejected"), Decimal(0))
    terms = validate_terms(TERMS, "USD")
    expected = month_total(terms, MonthState(revenue=net), "USD")
    async with app.state.sessionmaker() as session:
        rows = (
            await session.execute(
                select(CommissionEntry.partner_id, func.sum(CommissionEntry.amount_minor))
                .where(CommissionEntry.program_id == program["id"])
                .group_by(CommissionEntry.partner_id)
            )
        ).all()
    by_partner = {str(k): v for k, v in rows}
    got_child = Decimal(int(by_partner.get(partner["id"], 0) or 0)) / 100
    got_parent = Decimal(int(by_partner.get(parent["id"], 0) or 0)) / 100
    assert got_child == expected
    assert got_parent == round_money(expected * Decimal("0.03"), "USD")
