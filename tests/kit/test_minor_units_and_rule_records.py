"""Minor units as text, and each rule's explain record, made once."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from service.commissions import explain
from service.commissions.terms import Rule, Tier
from service.kit.money import format_minor, from_minor


@given(st.integers(-(10**15), 10**15), st.sampled_from(["JPY", "USD", "EUR", "KWD", "BHD"]))
def test_format_minor_writes_the_decimal_of_the_minor_units(minor: int, currency: str) -> None:
    assert format_minor(minor, currency) == f"{from_minor(minor, currency):f}"


def test_a_rules_record_is_made_once_and_never_names_another_rule() -> None:
    rule = Rule(
        event="sale",
        type="percent",
        tiers=(Tier(Decimal(0), Decimal(10)), Tier(Decimal(1000), Decimal("12.5"))),
        monthly_cap=Decimal("500.00"),
    )
    record = explain.rule_json(rule)
    assert record == {
        "event": "sale",
        "type": "percent",
        "tier_basis": "revenue",
        "tiers": [
            {"from": "0", "percent": "10", "amount": None},
            {"from": "1000", "percent": "12.5", "amount": None},
        ],
        "monthly_cap": "500.00",
    }
    assert explain.rule_json(rule) is record
    # An equal rule that is another object gets its own, equal record.
    twin = Rule(event="sale", type="percent", tiers=rule.tiers, monthly_cap=rule.monthly_cap)
    assert explain.rule_json(twin) == record
    # Once full, the records are forgotten, and made again.
    for n in range(explain._RULE_JSON_LIMIT + 1):
        explain.rule_json(Rule(event="lead", type="flat", amount=Decimal(n)))
    again = explain.rule_json(rule)
    assert again == record and again is not record
    assert len(explain._RULE_JSON) <= explain._RULE_JSON_LIMIT
