"""Terms validation: every refusal names the field at fault; the design example round-trips."""

from __future__ import annotations

import copy
import json
from decimal import Decimal as D
from typing import Any

import pytest

from service.agreements.terms import TermsIn, TermsInvalid, terms_to_json, validate_terms
from service.commissions.terms import Rule, Terms, Tier

DESIGN: dict[str, Any] = {
    "rules": [
        {
            "event": "sale",
            "type": "percent",
            "percent": "10",
            "tiers": [{"from": "0", "percent": "10"}, {"from": "10000.00", "percent": "15"}],
            "tier_basis": "revenue",
            "categories": {"gift-cards": "2"},
            "recurring_months": 12,
            "cap_per_conversion": "250.00",
            "monthly_cap": "5000.00",
        },
        {"event": "lead", "type": "flat", "amount": "3.00"},
        {"event": "click", "type": "flat", "amount": "0.02"},
    ],
    "parent_override_percent": "5",
    "hold_days": 30,
    "min_payout": "50.00",
}


def errors_of(raw: Any, currency: str = "USD") -> list[dict[str, str]]:
    with pytest.raises(TermsInvalid) as info:
        validate_terms(raw, currency)
    return info.value.errors


def fields_of(raw: Any, currency: str = "USD") -> list[str]:
    return [e["field"] for e in errors_of(raw, currency)]


def design(**changes: Any) -> dict[str, Any]:
    """The design example with rules[0] fields changed (None deletes)."""
    raw = copy.deepcopy(DESIGN)
    for key, value in changes.items():
        if value is None:
            raw["rules"][0].pop(key, None)
        else:
            raw["rules"][0][key] = value
    return raw


def test_the_design_example_parses_into_engine_terms() -> None:
    terms = validate_terms(DESIGN, "USD")
    sale = terms.rule_for("sale")
    assert sale == Rule(
        event="sale",
        type="percent",
        percent=D("10"),
        tiers=(Tier(D("0"), D("10")), Tier(D("10000.00"), D("15"))),
        tier_basis="revenue",
        categories=(("gift-cards", D("2")),),
        recurring_months=12,
        cap_per_conversion=D("250.00"),
        monthly_cap=D("5000.00"),
    )
    assert terms.rule_for("lead") == Rule("lead", "flat", amount=D("3.00"))
    assert terms.rule_for("click") == Rule("click", "flat", amount=D("0.02"))
    assert terms.parent_override_percent == D("5")
    assert terms.hold_days == 30
    assert terms.min_payout == D("50.00")


def test_the_design_example_round_trips_through_canonical_json() -> None:
    terms = validate_terms(DESIGN, "USD")
    stored = terms_to_json(terms)
    assert json.loads(json.dumps(stored)) == stored
    again = validate_terms(stored, "USD")
    assert again == terms
    assert terms_to_json(again) == stored
    assert stored["rules"][0]["tiers"][1] == {"from": "10000.00", "percent": "15"}
    assert stored["rules"][0]["percent"] == "10"
    assert stored["rules"][2] == {"event": "click", "type": "flat", "amount": "0.02"}


def test_a_validated_model_is_accepted_too() -> None:
    assert validate_terms(TermsIn.model_validate(DESIGN), "USD") == validate_terms(DESIGN, "USD")


def test_lifetime_absent_and_null_recurring_and_zero_months() -> None:
    assert validate_terms(design(recurring_months=None), "USD").rules[0].recurring_months is None
    raw = design()
    raw["rules"][0]["recurring_months"] = None
    assert validate_terms(raw, "USD").rules[0].recurring_months is None
    assert validate_terms(design(recurring_months=0), "USD").rules[0].recurring_months == 0


def test_count_basis_round_trips() -> None:
    raw = {
        "rules": [
            {
                "event": "lead",
                "type": "flat",
                "tiers": [{"from": "0", "amount": "1"}, {"from": "10", "amount": "2.5"}],
                "tier_basis": "count",
            }
        ]
    }
    terms = validate_terms(raw, "USD")
    assert terms.rules[0].tiers == (
        Tier(D(0), amount=D("1.00")),
        Tier(D(10), amount=D("2.50")),
    )
    assert validate_terms(terms_to_json(terms), "USD") == terms


# --- shape (pydantic) ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (design(percent=10), "terms.rules[0].percent"),
        (design(percent=10.5), "terms.rules[0].percent"),
        (design(monthly_cap=5000), "terms.rules[0].monthly_cap"),
        (design(tiers=[{"from": 0, "percent": "10"}]), "terms.rules[0].tiers[0].from"),
        (design(categories={"gift-cards": 2}), "terms.rules[0].categories.gift-cards"),
        (design(bonus="1"), "terms.rules[0].bonus"),
        (
            design(tiers=[{"from": "0", "percent": "10", "upto": "5"}]),
            "terms.rules[0].tiers[0].upto",
        ),
        (design(event="signup"), "terms.rules[0].event"),
        (design(type="fixed"), "terms.rules[0].type"),
        (design(tier_basis="clicks"), "terms.rules[0].tier_basis"),
        (design(recurring_months=-1), "terms.rules[0].recurring_months"),
        (design(recurring_months="12"), "terms.rules[0].recurring_months"),
        (design(tiers=[{"percent": "10"}]), "terms.rules[0].tiers[0].from"),
        (design(event=None), "terms.rules[0].event"),
    ],
)
def test_shape_errors_name_the_field(raw: dict[str, Any], field: str) -> None:
    assert field in fields_of(raw)


def test_json_numbers_are_refused_with_a_clear_message() -> None:
    (error,) = errors_of(design(percent=10))
    assert error == {
        "field": "terms.rules[0].percent",
        "message": 'must be a decimal string such as "10.00", not a JSON number',
    }


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({**DESIGN, "hold_days": 3651}, "terms.hold_days"),
        ({**DESIGN, "hold_days": -1}, "terms.hold_days"),
        ({**DESIGN, "hold_days": "30"}, "terms.hold_days"),
        ({**DESIGN, "min_payout": 50}, "terms.min_payout"),
        ({**DESIGN, "parent_override_percent": 5}, "terms.parent_override_percent"),
        ({**DESIGN, "extra": True}, "terms.extra"),
        ({"parent_override_percent": "5"}, "terms.rules"),
        ([], "terms"),
    ],
)
def test_top_level_shape_errors(raw: Any, field: str) -> None:
    assert field in fields_of(raw)


# --- semantics -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (design(percent="-1"), "terms.rules[0].percent"),
        (design(percent="100.01", tiers=None), "terms.rules[0].percent"),
        (design(percent="ten"), "terms.rules[0].percent"),
        (design(percent="NaN"), "terms.rules[0].percent"),
        (design(tiers=[{"from": "0", "percent": "101"}]), "terms.rules[0].tiers[0].percent"),
        (design(categories={"gift-cards": "-2"}), "terms.rules[0].categories.gift-cards"),
        (design(amount="1.00"), "terms.rules[0].amount"),
        (design(percent=None, tiers=None), "terms.rules[0].percent"),
        (design(percent="12"), "terms.rules[0].percent"),  # disagrees with tiers[0]
        (design(tiers=[]), "terms.rules[0].tiers"),
        (design(tiers=[{"from": "5", "percent": "10"}]), "terms.rules[0].tiers[0].from"),
        (
            design(tiers=[{"from": "0", "percent": "10"}, {"from": "0", "percent": "15"}]),
            "terms.rules[0].tiers[1].from",
        ),
        (
            design(
                tiers=[
                    {"from": "0", "percent": "10"},
                    {"from": "500", "percent": "12"},
                    {"from": "400", "percent": "15"},
                ]
            ),
            "terms.rules[0].tiers[2].from",
        ),
        (design(tiers=[{"from": "0"}]), "terms.rules[0].tiers[0].percent"),
        (
            design(tiers=[{"from": "0", "percent": "10", "amount": "1"}]),
            "terms.rules[0].tiers[0].amount",
        ),
        (
            design(tiers=[{"from": "0.005", "percent": "10"}], percent=None),
            "terms.rules[0].tiers[0].from",
        ),
        (
            design(
                tier_basis="count",
                tiers=[{"from": "0", "percent": "10"}, {"from": "2.5", "percent": "15"}],
            ),
            "terms.rules[0].tiers[1].from",
        ),
        (
            design(
                tier_basis="count",
                tiers=[{"from": "0", "percent": "10"}, {"from": "3", "percent": "5"}],
            ),
            "terms.rules[0].tiers[1].percent",
        ),
        (design(cap_per_conversion="250.001"), "terms.rules[0].cap_per_conversion"),
        (design(cap_per_conversion="-1"), "terms.rules[0].cap_per_conversion"),
        (design(monthly_cap="1e40"), "terms.rules[0].monthly_cap"),
        (design(categories={" ": "2"}), "terms.rules[0].categories"),
    ],
)
def test_semantic_errors_name_the_field(raw: dict[str, Any], field: str) -> None:
    assert field in fields_of(raw)


def flat_sale(**fields: Any) -> dict[str, Any]:
    return {"rules": [{"event": "sale", "type": "flat", **fields}]}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (flat_sale(), "terms.rules[0].amount"),
        (flat_sale(amount="5", percent="10"), "terms.rules[0].percent"),
        (flat_sale(amount="5", categories={"a": "1"}), "terms.rules[0].categories"),
        (flat_sale(amount="-5"), "terms.rules[0].amount"),
        (
            flat_sale(tiers=[{"from": "0", "amount": "1"}, {"from": "100", "amount": "2"}]),
            "terms.rules[0].tier_basis",
        ),
        (
            flat_sale(tier_basis="count", tiers=[{"from": "0", "percent": "1"}]),
            "terms.rules[0].tiers[0].amount",
        ),
        (
            flat_sale(tier_basis="count", tiers=[{"from": "0", "amount": "1", "percent": "1"}]),
            "terms.rules[0].tiers[0].percent",
        ),
        ({"rules": []}, "terms.rules"),
        (
            {"rules": [{"event": "click", "type": "percent", "percent": "1"}]},
            "terms.rules[0].type",
        ),
        (
            {"rules": [{"event": "lead", "type": "flat", "amount": "1", "recurring_months": 3}]},
            "terms.rules[0].recurring_months",
        ),
        (
            {
                "rules": [
                    {"event": "lead", "type": "percent", "percent": "1", "categories": {"a": "1"}}
                ]
            },
            "terms.rules[0].categories",
        ),
        (
            {
                "rules": [
                    {"event": "lead", "type": "flat", "amount": "1"},
                    {"event": "lead", "type": "flat", "amount": "2"},
                ]
            },
            "terms.rules[1].event",
        ),
        ({**DESIGN, "min_payout": "50.001"}, "terms.min_payout"),
        ({**DESIGN, "min_payout": "-50"}, "terms.min_payout"),
        ({**DESIGN, "parent_override_percent": "150"}, "terms.parent_override_percent"),
    ],
)
def test_rule_shape_errors_name_the_field(raw: dict[str, Any], field: str) -> None:
    assert field in fields_of(raw)


def test_decimals_follow_the_program_currency() -> None:
    assert fields_of({"rules": [{"event": "lead", "type": "flat", "amount": "3.5"}]}, "JPY") == [
        "terms.rules[0].amount"
    ]
    kwd = validate_terms({"rules": [{"event": "lead", "type": "flat", "amount": "0.125"}]}, "KWD")
    assert kwd.rules[0].amount == D("0.125")
    assert fields_of({"rules": [{"event": "lead", "type": "flat", "amount": "0.1255"}]}, "KWD") == [
        "terms.rules[0].amount"
    ]


def test_every_problem_is_reported_at_once_with_exact_fields() -> None:
    raw = {
        "rules": [
            {
                "event": "sale",
                "type": "percent",
                "percent": "120",
                "amount": "1.00",
                "tiers": [{"from": "1", "percent": "10"}],
            },
            {"event": "click", "type": "percent", "percent": "1"},
            {"event": "sale", "type": "flat", "amount": "2.001"},
        ],
        "parent_override_percent": "-5",
    }
    assert fields_of(raw) == [
        "terms.rules[0].percent",
        "terms.rules[0].tiers[0].from",
        "terms.rules[0].amount",
        "terms.rules[1].type",
        "terms.rules[2].event",
        "terms.rules[2].amount",
        "terms.parent_override_percent",
    ]


def test_terms_invalid_carries_messages() -> None:
    (error,) = errors_of(design(percent="150", tiers=None))
    assert error == {
        "field": "terms.rules[0].percent",
        "message": "a percent must be between 0 and 100",
    }
    assert isinstance(TermsInvalid([error]), Exception)


def test_engine_terms_from_json_are_plain_dataclasses() -> None:
    terms = validate_terms(DESIGN, "USD")
    assert isinstance(terms, Terms)
    hash(terms)  # frozen and hashable: safe to cache per agreement version


def test_stored_terms_are_parsed_once_per_agreement_version(monkeypatch):
    import uuid

    from service.agreements import service as agreements
    from service.models import AgreementVersion

    calls = []
    real = agreements.validate_terms

    def counting(raw, currency):
        calls.append(currency)
        return real(raw, currency)

    monkeypatch.setattr(agreements, "validate_terms", counting)
    version = AgreementVersion(
        agreement_id=uuid.uuid4(),
        version=1,
        terms={"rules": [{"event": "sale", "type": "percent", "percent": "10"}]},
    )
    first = agreements.load_terms(version, "USD")
    assert agreements.load_terms(version, "USD") is first
    assert calls == ["USD"]
    later = AgreementVersion(agreement_id=version.agreement_id, version=2, terms=version.terms)
    agreements.load_terms(later, "USD")
    assert calls == ["USD", "USD"]
