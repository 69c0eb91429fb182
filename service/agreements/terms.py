"""Agreement terms: the JSON shape, its validation, and the engine's dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError
from pydantic_core import PydanticCustomError

from service.commissions.terms import Rule, Terms, Tier
from service.kit.money import MoneyError, parse_amount, parse_decimal

# Stored as BIGINT minor units: 10**15 leaves room for three decimals.
_MONEY_LIMIT = Decimal(10) ** 15
_HUNDRED = Decimal(100)


def _refuse_numbers(value: object) -> object:
    # JSON numbers are binary floats to most clients; "0.1" must arrive as text.
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "decimal_string",
            'must be a decimal string such as "10.00", not a JSON number',
        )
    return value


DecimalStr = Annotated[str, BeforeValidator(_refuse_numbers)]


class TierIn(BaseModel):
    """A bracket: where it starts and what it pays."""

    model_config = ConfigDict(extra="forbid")

    start: DecimalStr = Field(alias="from")
    percent: DecimalStr | None = None
    amount: DecimalStr | None = None


class RuleIn(BaseModel):
    """How one event earns, as sent."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["sale", "lead", "click"]
    type: Literal["percent", "flat"]
    percent: DecimalStr | None = None
    amount: DecimalStr | None = None
    tiers: list[TierIn] | None = None
    tier_basis: Literal["revenue", "count"] = "revenue"
    categories: dict[str, DecimalStr] | None = None
    # Absent and null both mean lifetime; 0 means the first sale only.
    recurring_months: StrictInt | None = Field(default=None, ge=0, le=1200)
    cap_per_conversion: DecimalStr | None = None
    monthly_cap: DecimalStr | None = None


class TermsIn(BaseModel):
    """Agreement terms, as sent."""

    model_config = ConfigDict(extra="forbid")

    rules: list[RuleIn]
    parent_override_percent: DecimalStr | None = None
    hold_days: StrictInt | None = Field(default=None, ge=0, le=3650)
    min_payout: DecimalStr | None = None


class TermsInvalid(Exception):
    """Terms refused; `errors` is a list of {"field", "message"} naming each culprit."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def _path(loc: tuple[int | str, ...]) -> str:
    out = "terms"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class _Check:
    """Collects every semantic problem so one 422 lists them all."""

    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.errors: list[dict[str, str]] = []

    def fail(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def number(self, text: str, field: str) -> Decimal | None:
        try:
            return parse_decimal(text)
        except MoneyError as exc:
            self.fail(field, str(exc))
            return None

    def percent(self, text: str | None, field: str) -> Decimal | None:
        if text is None:
            return None
        value = self.number(text, field)
        if value is None:
            return None
        if not Decimal(0) <= value <= _HUNDRED:
            self.fail(field, "a percent must be between 0 and 100")
            return None
        return value.normalize()

    def money(self, text: str | None, field: str) -> Decimal | None:
        if text is None:
            return None
        try:
            value = parse_amount(text, self.currency)
        except MoneyError as exc:
            self.fail(field, str(exc))
            return None
        except ArithmeticError:
            self.fail(field, "is too large")
            return None
        if value >= _MONEY_LIMIT:
            self.fail(field, "is too large")
            return None
        return value

    def whole(self, text: str, field: str) -> Decimal | None:
        value = self.number(text, field)
        if value is None:
            return None
        if value < 0 or value != value.to_integral_value() or value >= _MONEY_LIMIT:
            self.fail(field, "with tier_basis \"count\" 'from' is a whole number of conversions")
            return None
        return Decimal(int(value))


def _tiers(rule: RuleIn, at: str, check: _Check) -> tuple[Tier, ...]:
    if rule.tiers is None:
        return ()
    if not rule.tiers:
        check.fail(f"{at}.tiers", "must not be empty; leave it out for a single rate")
        return ()
    out: list[Tier] = []
    previous: Decimal | None = None
    for j, tier in enumerate(rule.tiers):
        tp = f"{at}.tiers[{j}]"
        if rule.tier_basis == "count":
            start = check.whole(tier.start, f"{tp}.from")
        else:
            start = check.money(tier.start, f"{tp}.from")
        if start is not None:
            if j == 0 and start != 0:
                check.fail(f"{tp}.from", 'the first tier must start from "0"')
            elif j > 0 and previous is not None and start <= previous:
                check.fail(
                    f"{tp}.from", f"must be greater than the previous tier's from ({previous})"
                )
        previous = start
        percent: Decimal | None = None
        amount: Decimal | None = None
        if rule.type == "percent":
            if tier.percent is None:
                check.fail(f"{tp}.percent", "each tier of a percent rule needs percent")
            percent = check.percent(tier.percent, f"{tp}.percent")
            if tier.amount is not None:
                check.fail(f"{tp}.amount", "not allowed on a percent rule's tier; use percent")
        else:
            if tier.amount is None:
                check.fail(f"{tp}.amount", "each tier of a flat rule needs amount")
            amount = check.money(tier.amount, f"{tp}.amount")
            if tier.percent is not None:
                check.fail(f"{tp}.percent", "not allowed on a flat rule's tier; use amount")
        if (
            rule.type == "percent"
            and rule.tier_basis == "count"
            and percent is not None
            and out
            and out[-1].percent is not None
            and percent < out[-1].percent
        ):
            # The count basis applies one rate to the whole month; a falling
            # rate would make a new sale lower the month's commission.
            check.fail(f"{tp}.percent", 'with tier_basis "count" rates must not decrease')
        out.append(
            Tier(start=start if start is not None else Decimal(0), percent=percent, amount=amount)
        )
    return tuple(out)


def _rule(rule: RuleIn, at: str, check: _Check) -> Rule:
    if rule.event == "click" and rule.type != "flat":
        check.fail(f"{at}.type", 'click rules must be "flat"')
    percent = check.percent(rule.percent, f"{at}.percent")
    amount = check.money(rule.amount, f"{at}.amount")
    tiers = _tiers(rule, at, check)
    if rule.type == "percent":
        if rule.amount is not None:
            check.fail(f"{at}.amount", "not allowed on a percent rule; use percent")
        if rule.percent is None and rule.tiers is None:
            check.fail(f"{at}.percent", "a percent rule needs percent or tiers")
        if percent is not None and tiers and tiers[0].percent not in (None, percent):
            check.fail(f"{at}.percent", "must equal the first tier's percent (the tiers decide)")
    else:
        if rule.percent is not None:
            check.fail(f"{at}.percent", "not allowed on a flat rule; use amount")
        if rule.amount is None and rule.tiers is None:
            check.fail(f"{at}.amount", "a flat rule needs amount or tiers")
        if rule.tiers is not None and rule.tier_basis != "count":
            check.fail(f"{at}.tier_basis", 'tiers of a flat rule need tier_basis "count"')
        if amount is not None and tiers and tiers[0].amount not in (None, amount):
            check.fail(f"{at}.amount", "must equal the first tier's amount (the tiers decide)")
    categories: list[tuple[str, Decimal]] = []
    if rule.categories is not None:
        if rule.event != "sale" or rule.type != "percent":
            check.fail(f"{at}.categories", "categories are only for sale percent rules")
        for name, text in rule.categories.items():
            if not name.strip():
                check.fail(f"{at}.categories", "category names must not be empty")
                continue
            pct = check.percent(text, f"{at}.categories.{name}")
            if pct is not None:
                categories.append((name, pct))
    if rule.recurring_months is not None and rule.event != "sale":
        check.fail(f"{at}.recurring_months", "only sale rules recur")
    return Rule(
        event=rule.event,
        type=rule.type,
        percent=percent,
        amount=amount,
        tiers=tiers,
        tier_basis=rule.tier_basis,
        categories=tuple(sorted(categories)),
        recurring_months=rule.recurring_months,
        cap_per_conversion=check.money(rule.cap_per_conversion, f"{at}.cap_per_conversion"),
        monthly_cap=check.money(rule.monthly_cap, f"{at}.monthly_cap"),
    )


def validate_terms(raw: Mapping[str, Any] | TermsIn, currency: str) -> Terms:
    """Parse and check terms for a program currency, or raise TermsInvalid naming every culprit."""
    if isinstance(raw, TermsIn):
        model = raw
    else:
        try:
            model = TermsIn.model_validate(raw)
        except ValidationError as exc:
            raise TermsInvalid(
                [{"field": _path(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
            ) from None
    check = _Check(currency)
    if not model.rules:
        check.fail("terms.rules", "at least one rule is needed")
    seen: dict[str, int] = {}
    rules: list[Rule] = []
    for i, rule_in in enumerate(model.rules):
        at = f"terms.rules[{i}]"
        if rule_in.event in seen:
            check.fail(
                f"{at}.event",
                f"only one rule per event; {rule_in.event!r} is already in rules[{seen[rule_in.event]}]",
            )
        else:
            seen[rule_in.event] = i
        rules.append(_rule(rule_in, at, check))
    terms = Terms(
        rules=tuple(rules),
        parent_override_percent=check.percent(
            model.parent_override_percent, "terms.parent_override_percent"
        ),
        hold_days=model.hold_days,
        min_payout=check.money(model.min_payout, "terms.min_payout"),
    )
    if check.errors:
        raise TermsInvalid(check.errors)
    return terms


def _text(value: Decimal) -> str:
    return f"{value:f}"


def terms_to_json(terms: Terms) -> dict[str, Any]:
    """Canonical JSON for storage: decimal strings, absent keys left out, so it round-trips."""
    rules: list[dict[str, Any]] = []
    for rule in terms.rules:
        out: dict[str, Any] = {"event": rule.event, "type": rule.type}
        if rule.percent is not None:
            out["percent"] = _text(rule.percent)
        if rule.amount is not None:
            out["amount"] = _text(rule.amount)
        if rule.tiers:
            tiers: list[dict[str, str]] = []
            for tier in rule.tiers:
                row = {"from": _text(tier.start)}
                if tier.percent is not None:
                    row["percent"] = _text(tier.percent)
                if tier.amount is not None:
                    row["amount"] = _text(tier.amount)
                tiers.append(row)
            out["tiers"] = tiers
        if rule.tiers or rule.tier_basis != "revenue":
            out["tier_basis"] = rule.tier_basis
        if rule.categories:
            out["categories"] = {name: _text(pct) for name, pct in rule.categories}
        if rule.recurring_months is not None:
            out["recurring_months"] = rule.recurring_months
        if rule.cap_per_conversion is not None:
            out["cap_per_conversion"] = _text(rule.cap_per_conversion)
        if rule.monthly_cap is not None:
            out["monthly_cap"] = _text(rule.monthly_cap)
        rules.append(out)
    doc: dict[str, Any] = {"rules": rules}
    if terms.parent_override_percent is not None:
        doc["parent_override_percent"] = _text(terms.parent_override_percent)
    if terms.hold_days is not None:
        doc["hold_days"] = terms.hold_days
    if terms.min_payout is not None:
        doc["min_payout"] = _text(terms.min_payout)
    return doc
