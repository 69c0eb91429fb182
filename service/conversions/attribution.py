"""Who a conversion belongs to: what each method finds, and the pure choice among them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.conversions.customers import Held
from service.kit.columns import Columns
from service.kit.driver import Prepared
from service.links.promo_codes import consume_promo_code, find_promo_code, refusal
from service.models import Click, Customer, Link, Partner, PartnerStatus, Program
from service.partnering.deals import repository as deals
from service.partnering.deals.domains import email_domain
from service.tracking.clickid import ClickId, ClickIdInvalid, ClickIdSigner

Method = Literal["promo_code", "click", "customer", "deal"]
METHODS: tuple[Method, ...] = ("promo_code", "click", "customer", "deal")
# A backend's clock may run ahead of ours by this much before "in the future" is refused.
FUTURE_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class Candidate:
    """What one method found: a partner, or why it holds no partner."""

    partner_id: uuid.UUID | None = None
    reason: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """True when the method names a partner."""
        return self.partner_id is not None and self.reason is None


@dataclass(frozen=True)
class Decision:
    """The winning method and partner, and why each method tried before it failed."""

    method: Method | None
    partner_id: uuid.UUID | None
    reasons: tuple[tuple[Method, str], ...]
    detail: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """The API's `attribution` object."""
        return {
            "partner_id": str(self.partner_id) if self.partner_id else None,
            "method": self.method,
            "reasons": [{"method": m, "reason": r} for m, r in self.reasons],
            **({"detail": dict(self.detail)} if self.detail else {}),
        }


def choose(order: Sequence[Method], found: Mapping[Method, Candidate]) -> Decision:
    """The first method in `order` that holds wins; earlier ones say why they did not."""
    reasons: list[tuple[Method, str]] = []
    for method in order:
        candidate = found.get(method) or Candidate(reason="not tried")
        if candidate.holds:
            return Decision(method, candidate.partner_id, tuple(reasons), candidate.detail)
        reasons.append((method, candidate.reason or "no partner"))
    return Decision(None, None, tuple(reasons))


# --- what each method finds ---------------------------------------------------


# The partners each method loaded, by id: held here so that the winner's row is at hand
# afterwards (the session's identity map keeps objects only while someone refers to them).
Seen = dict[uuid.UUID, Partner]


async def _partner(session: AsyncSession, partner_id: uuid.UUID, seen: Seen) -> Partner | None:
    partner = seen.get(partner_id) or await session.get(Partner, partner_id)
    if partner is not None:
        seen[partner_id] = partner
    return partner


def _partner_unavailable(partner: Partner | None) -> str | None:
    if partner is None:
        return "partner no longer exists"
    if partner.status != PartnerStatus.active:
        return f"partner {partner.status}"
    return None


async def _by_promo(
    session: AsyncSession, program: Program, code: str | None, at: datetime, seen: Seen
) -> tuple[Candidate, uuid.UUID | None]:
    if not code:
        return Candidate(reason="no promo code sent"), None
    found = await find_promo_code(session, program.id, code)
    if found is None:
        return Candidate(reason="promo code unknown"), None
    promo, partner = found
    reason = refusal(promo, at)
    if reason:
        return Candidate(reason=reason), None
    seen[partner.id] = partner
    unavailable = _partner_unavailable(partner)
    if unavailable:
        return Candidate(reason=unavailable), None
    return Candidate(partner_id=promo.partner_id, detail={"promo_code": promo.code}), promo.id


# Built once: the statement runs for every conversion that comes with a click id.
_LINK = Columns(Link)
_PARTNER = Columns(Partner)
_LINK_AND_PARTNER = Prepared(
    select(*_LINK.columns, *_PARTNER.columns)
    .join_from(Link, Partner, Partner.id == Link.partner_id)
    .where(Link.id == bindparam("link_id", type_=Link.id.type))
)


async def _by_click(
    session: AsyncSession,
    signer: ClickIdSigner,
    program: Program,
    token: str | None,
    at: datetime,
    seen: Seen,
) -> tuple[Candidate, ClickId | None]:
    if not token:
        return Candidate(reason="no click id sent"), None
    try:
        click = signer.verify(token)
    except ClickIdInvalid as exc:
        reason = {
            "malformed": "click id malformed",
            "unknown key id": "click id signed with an unknown key",
        }.get(exc.reason, "click id signature invalid")
        return Candidate(reason=reason), None
    found = await _LINK_AND_PARTNER.fetchrow(session, {"link_id": click.link_id})
    if found is None or (link := _LINK.detached(found)).program_id != program.id:
        return Candidate(reason="click id belongs to another program"), click
    partner = _PARTNER.detached(found, len(_LINK))
    seen[partner.id] = partner
    bot = click.bot
    if bot is None:
        # An id signed before ids carried the bot bit: the click row knows.
        bot = await session.scalar(
            select(Click.is_bot).where(
                Click.id == click.click_uuid, Click.clicked_at == click.clicked_at
            )
        )
    if bot:
        return Candidate(reason="click from a bot"), click
    if click.clicked_at > at + FUTURE_SLACK:
        return Candidate(reason="click happened after the conversion"), click
    window = timedelta(days=program.attribution_window_days)
    if at - click.clicked_at > window:
        return (
            Candidate(
                reason=f"click outside the attribution window ({program.attribution_window_days} days)"
            ),
            click,
        )
    unavailable = _partner_unavailable(partner)
    if unavailable:
        return Candidate(reason=unavailable), click
    detail = {"click_id": str(click.click_uuid), "link_id": str(link.id)}
    return Candidate(partner_id=link.partner_id, detail=detail), click


async def _by_customer(session: AsyncSession, customer: Customer | None, seen: Seen) -> Candidate:
    if customer is None:
        return Candidate(reason="no customer id sent")
    if customer.partner_id is None:
        return Candidate(reason="customer has no earlier attributed conversion")
    partner = await _partner(session, customer.partner_id, seen)
    unavailable = _partner_unavailable(partner)
    if unavailable:
        return Candidate(reason=unavailable)
    return Candidate(partner_id=customer.partner_id, detail={"customer_id": customer.external_id})


async def _by_deal(
    session: AsyncSession, program: Program, customer_email: str | None, at: datetime, seen: Seen
) -> Candidate:
    if not customer_email:
        return Candidate(reason="no customer email sent")
    domain = email_domain(customer_email)
    if domain is None:
        return Candidate(reason="customer email names no company domain")
    deal = await deals.approved_for(session, program.id, domain, at)
    if deal is None:
        return Candidate(reason="no approved deal holds the customer's domain")
    partner = await _partner(session, deal.partner_id, seen)
    unavailable = _partner_unavailable(partner)
    if unavailable:
        return Candidate(reason=unavailable)
    return Candidate(partner_id=deal.partner_id, detail={"deal_id": str(deal.id)})


@dataclass(frozen=True)
class Attributed:
    """The decision and its partner's row, the verified click (whoever won), and the promo
    code used up, if it won."""

    decision: Decision
    partner: Partner | None
    click: ClickId | None
    promo_code_id: uuid.UUID | None


async def attribute(
    session: AsyncSession,
    signer: ClickIdSigner,
    program: Program,
    *,
    promo_code: str | None,
    click_token: str | None,
    customer: Held | None,
    at: datetime,
    customer_email: str | None = None,
) -> Attributed:
    """Try every method, choose in the program's order, and use up the winning promo code."""
    order = [m for m in program.attribution_order if m in METHODS]
    found: dict[Method, Candidate] = {}
    seen: Seen = {}
    if customer is not None and customer.partner is not None:
        seen[customer.partner.id] = customer.partner
    found["promo_code"], promo_id = await _by_promo(session, program, promo_code, at, seen)
    found["click"], click = await _by_click(session, signer, program, click_token, at, seen)
    found["customer"] = await _by_customer(
        session, None if customer is None else customer.customer, seen
    )
    if "deal" in order:
        # Only programs that list the method pay for its query.
        found["deal"] = await _by_deal(session, program, customer_email, at, seen)
    decision = choose(order, found)  # type: ignore[arg-type]
    used = None
    if decision.method == "promo_code" and promo_id is not None:
        if await consume_promo_code(session, promo_id):
            used = promo_id
        else:
            found["promo_code"] = Candidate(reason="promo code used up")
            decision = choose(order, found)  # type: ignore[arg-type]
    partner = None
    if decision.partner_id is not None:
        partner = await _partner(session, decision.partner_id, seen)
    return Attributed(decision, partner, click, used)
