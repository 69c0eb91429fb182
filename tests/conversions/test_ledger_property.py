"""Random sequences through the real API keep the ledger equal to the pure month function."""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

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


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def expected_commission(net: Decimal) -> Decimal:
    """TERMS worked by hand: 7.5% to 500, 12% to 1200, 15% above; capped at 400 a month."""
    brackets = [
        (Decimal(0), Decimal(500), Decimal("0.075")),
        (Decimal(500), Decimal(1200), Decimal("0.12")),
        (Decimal(1200), None, Decimal("0.15")),
    ]
    total = Decimal(0)
    for low, high, rate in brackets:
        if net > low:
            top = net if high is None else min(net, high)
            total += (top - low) * rate
    return min(cents(total), Decimal("400.00"))


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
            share = cents(remaining * op[2] / 100)
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
    expected = expected_commission(net)
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
    assert got_parent == cents(expected * Decimal("0.03"))


def test_the_hand_worked_expectation_itself():
    assert expected_commission(Decimal("100.00")) == Decimal("7.50")
    # 500 * 7.5% + 700 * 12% + 100 * 15% = 37.5 + 84 + 15
    assert expected_commission(Decimal("1300.00")) == Decimal("136.50")
    assert expected_commission(Decimal("10000.00")) == Decimal("400.00")
    assert expected_commission(Decimal("0.07")) == Decimal("0.01")  # 0.00525, half-even
