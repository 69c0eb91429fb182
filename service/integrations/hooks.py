"""Integration webhooks: verifying a shop's event, keeping it once in the inbox, and carrying
out (or replaying) what it asks through the same conversion and refund functions as the API
(one path for money, whatever the door).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import pydantic
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.config import Settings
from service.conversions.intake import Context, record_conversion
from service.conversions.refunds import record_refund
from service.conversions.review import decide
from service.conversions.schemas import ConversionCreate, RefundCreate
from service.errors import Conflict, NotFound, ProblemError
from service.integrations import repository, sealing, service, shopify, stripe, woocommerce
from service.integrations.plans import (
    Cancel,
    PayloadInvalid,
    Plan,
    RefundPart,
    Sale,
    load_json,
)
from service.kit.ids import new_id
from service.kit.money import MoneyError, from_minor
from service.kit.time import utc_now
from service.links.promo_codes import promo_code_for_external_id
from service.models import (
    ConversionStatus,
    DeliveryStatus,
    Integration,
    IntegrationDelivery,
    IntegrationStatus,
    Refund,
    Role,
)

log = logging.getLogger(__name__)

PROVIDERS = {"stripe": stripe, "shopify": shopify, "woocommerce": woocommerce}
# Which headers each provider's mapping and dedupe read, kept with the body for replays.
KEPT_HEADERS = {
    "stripe": (),
    "shopify": shopify.HEADERS,
    "woocommerce": woocommerce.HEADERS,
}
DISABLED_REASON = "the integration is disabled; enable it and replay this delivery"


class SignatureRejected(ProblemError):
    """A webhook whose signature does not verify: nothing of it is read or stored."""

    status, slug, title = 401, "signature-invalid", "Unauthorized"


def principal_of(integration: Integration) -> Principal:
    """The merchant the integration acts as: its own key, bound to its program."""
    return Principal(
        key_id=integration.api_key_id,
        role=Role.merchant,
        program_ids=frozenset({integration.program_id}),
        partner_id=None,
    )


# --- carrying out a plan ----------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: DeliveryStatus
    reason: str | None = None
    conversion_id: uuid.UUID | None = None


def _combined(outcomes: list[Outcome]) -> Outcome:
    statuses = {o.status for o in outcomes}
    status = (
        DeliveryStatus.failed
        if DeliveryStatus.failed in statuses
        else DeliveryStatus.processed
        if DeliveryStatus.processed in statuses
        else DeliveryStatus.ignored
    )
    reasons = [o.reason for o in outcomes if o.reason]
    conversion_id = next((o.conversion_id for o in outcomes if o.conversion_id), None)
    return Outcome(status, "; ".join(dict.fromkeys(reasons)) or None, conversion_id)


def _invalid(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{field}: {first.get('msg', 'invalid')}"


def _problem(exc: ProblemError) -> str:
    if exc.errors:
        return "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    return exc.detail


async def _sale(
    session: AsyncSession, integration: Integration, sale: Sale, ctx: Context
) -> Outcome:
    existing = await repository.sale(session, integration.program_id, (sale.order_id,))
    if existing is not None:
        # The same sale by another event (a subscription's first invoice after its checkout)
        # or a shop's retry: one conversion, whatever else the second event says.
        return Outcome(DeliveryStatus.processed, "duplicate", existing.id)
    promo_code = sale.promo_code
    if promo_code is None and sale.promo_external_id is not None:
        # The shop named the code by its own id: the promo code listing it, if any, is the
        # code the conversion carries, so attribution and use counting are the API's.
        promo_code = await promo_code_for_external_id(
            session, integration.program_id, sale.promo_external_id
        )
    try:
        body = ConversionCreate(
            program_id=integration.program_id,
            type="sale",
            order_id=sale.order_id,
            amount=f"{sale.amount:f}",
            currency=sale.currency,
            occurred_at=sale.occurred_at,
            click_id=sale.click_id,
            promo_code=promo_code,
            customer_id=sale.customer_id,
            customer_email=sale.customer_email,
            metadata=dict(sale.metadata),
        )
    except pydantic.ValidationError as exc:
        return Outcome(DeliveryStatus.failed, _invalid(exc))
    try:
        async with session.begin_nested():
            recorded = await record_conversion(session, body, principal_of(integration), ctx)
    except Conflict as exc:
        found = exc.extra.get("conversion_id")
        if found:
            return Outcome(DeliveryStatus.processed, "duplicate", uuid.UUID(found))
        return Outcome(DeliveryStatus.failed, _problem(exc))
    except ProblemError as exc:
        return Outcome(DeliveryStatus.failed, _problem(exc))
    return Outcome(
        DeliveryStatus.processed, None if recorded.created else "duplicate", recorded.conversion.id
    )


def _scaled_refund(total_minor: int, refunded: int, gross: int) -> int:
    """The running refunded share of the sale's base, in its minor units, half-even."""
    if refunded >= gross:
        return total_minor
    return round(Fraction(total_minor * refunded, gross))


async def _refund(session: AsyncSession, integration: Integration, part: RefundPart) -> Outcome:
    # Locked: a concurrent refund of the same order waits, then sees what this one added.
    conversion = await repository.sale(
        session, integration.program_id, part.order_ids, part.metadata_match, lock=True
    )
    if conversion is None:
        return Outcome(DeliveryStatus.failed, "unknown order")
    seen = await session.scalar(
        select(Refund.id).where(
            Refund.program_id == integration.program_id, Refund.refund_id == part.refund_id
        )
    )
    if seen is not None:
        return Outcome(DeliveryStatus.processed, "duplicate", conversion.id)
    if part.cumulative is not None:
        refunded, gross = part.cumulative
        target = _scaled_refund(conversion.amount_minor or 0, refunded, gross)
        delta = target - conversion.refunded_minor
        if delta <= 0:
            return Outcome(DeliveryStatus.processed, "already refunded", conversion.id)
        amount = f"{from_minor(delta, conversion.currency):f}"
    else:
        assert part.amount is not None
        amount = f"{part.amount:f}"
    try:
        body = RefundCreate(
            program_id=integration.program_id,
            order_id=conversion.order_id,
            refund_id=part.refund_id,
            amount=amount,
            occurred_at=part.occurred_at,
        )
    except pydantic.ValidationError as exc:
        return Outcome(DeliveryStatus.failed, _invalid(exc), conversion.id)
    try:
        async with session.begin_nested():
            await record_refund(session, body, principal_of(integration))
    except ProblemError as exc:
        return Outcome(DeliveryStatus.failed, _problem(exc), conversion.id)
    return Outcome(DeliveryStatus.processed, None, conversion.id)


async def _cancel(session: AsyncSession, integration: Integration, cancel: Cancel) -> Outcome:
    conversion = await repository.sale(
        session, integration.program_id, (cancel.order_id,), lock=True
    )
    if conversion is None:
        return Outcome(DeliveryStatus.ignored, "cancelled before any sale was recorded")
    if conversion.status == ConversionStatus.rejected:
        return Outcome(DeliveryStatus.processed, "already rejected", conversion.id)
    try:
        async with session.begin_nested():
            await decide(
                session, conversion.id, "reject", "cancelled in the shop", principal_of(integration)
            )
    except ProblemError as exc:
        return Outcome(DeliveryStatus.failed, _problem(exc), conversion.id)
    return Outcome(DeliveryStatus.processed, "cancelled: conversion rejected", conversion.id)


async def carry_out(
    session: AsyncSession, integration: Integration, plan: Plan, ctx: Context
) -> Outcome:
    """Record what the plan asks, through the API's own conversion and refund functions."""
    if plan.ignored is not None:
        return Outcome(DeliveryStatus.ignored, plan.ignored)
    outcomes: list[Outcome] = []
    if plan.sale is not None:
        outcomes.append(await _sale(session, integration, plan.sale, ctx))
    for part in plan.refunds:
        outcomes.append(await _refund(session, integration, part))
    if plan.cancel is not None:
        outcomes.append(await _cancel(session, integration, plan.cancel))
    return _combined(outcomes)


def plan_for(integration: Integration, topic: str, payload: dict[str, Any]) -> Plan:
    """The provider's reading of a verified payload."""
    accept = integration.accept_test_events
    if integration.provider == "stripe":
        return stripe.plan(payload, accept_test_events=accept)
    if integration.provider == "shopify":
        return shopify.plan(topic, payload, accept_test_events=accept)
    return woocommerce.plan(topic, payload, accept_test_events=accept)


async def _process(
    session: AsyncSession,
    integration: Integration,
    delivery: IntegrationDelivery,
    payload: dict[str, Any],
    ctx: Context,
) -> Outcome:
    if integration.status != IntegrationStatus.enabled:
        return Outcome(DeliveryStatus.ignored, DISABLED_REASON)
    try:
        plan = plan_for(integration, delivery.topic, payload)
    except (PayloadInvalid, MoneyError) as exc:
        return Outcome(DeliveryStatus.failed, f"payload not understood: {exc}")
    try:
        return await carry_out(session, integration, plan, ctx)
    except Exception:
        # Answered 500, so the shop retries; the transaction rolls back, nothing is kept.
        log.exception(
            "integration %s: delivery %s (%s, %s) failed unexpectedly",
            integration.id,
            delivery.id,
            delivery.event_key,
            delivery.topic,
        )
        raise


def _settle(delivery: IntegrationDelivery, outcome: Outcome) -> None:
    delivery.status = outcome.status
    delivery.reason = outcome.reason
    delivery.conversion_id = outcome.conversion_id
    delivery.processed_at = utc_now()


# --- the webhook ----------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A webhook's inbox entry (none for a ping) and what came of it."""

    delivery: IntegrationDelivery | None
    outcome: Outcome
    # A verified body that is not JSON: kept as failed, answered 400.
    not_json: bool = False


def _secrets(integration: Integration, key: bytes) -> list[str]:
    found = [sealing.unseal(key, integration.id, integration.secret_sealed)]
    expires = integration.previous_secret_expires_at
    if integration.previous_secret_sealed is not None and expires is not None:
        if expires > utc_now():
            found.append(sealing.unseal(key, integration.id, integration.previous_secret_sealed))
    return found


def _identify(
    provider: str, headers: Mapping[str, str], payload: dict[str, Any] | None, body: bytes
) -> tuple[str, str]:
    if provider == "stripe":
        return stripe.event_key(payload, body), stripe.topic(payload)
    module = shopify if provider == "shopify" else woocommerce
    return module.event_key(headers, body), module.topic(headers)


async def receive(
    session: AsyncSession,
    provider: str,
    integration_id: uuid.UUID,
    headers: Mapping[str, str],
    body: bytes,
    ctx: Context,
    settings: Settings,
) -> Received:
    """Verify a shop's webhook, keep it in the inbox once, and carry out what it asks.

    A bad or missing signature raises SignatureRejected before anything is parsed or kept.
    """
    integration = await repository.for_hook(session, integration_id, provider)
    if integration is None:
        raise NotFound(f"no {provider} integration {integration_id}")
    if provider == "woocommerce" and woocommerce.is_ping(headers, body):
        return Received(None, Outcome(DeliveryStatus.ignored, "webhook ping"))
    key = await sealing.sealing_key(session, settings)
    try:
        PROVIDERS[provider].verify(_secrets(integration, key), headers, body, time.time())
    except ValueError as exc:
        raise SignatureRejected(str(exc)) from exc
    payload: dict[str, Any] | None = None
    not_json = ""
    try:
        payload = load_json(body)
    except PayloadInvalid as exc:
        not_json = str(exc)
    event_key, topic = _identify(provider, headers, payload, body)
    kept = {name: headers[name] for name in KEPT_HEADERS[provider] if name in headers}
    # The insert claims the event: a concurrent delivery of it waits on this row's lock.
    claimed = await session.scalar(
        insert(IntegrationDelivery)
        .values(
            id=new_id(),
            integration_id=integration.id,
            event_key=event_key,
            topic=topic[:200],
            status=DeliveryStatus.failed,
            reason="processing",
            body=body,
            headers=kept,
            attempts=1,
        )
        .on_conflict_do_nothing(index_elements=["integration_id", "event_key"])
        .returning(IntegrationDelivery.id)
    )
    delivery = await repository.delivery(session, integration.id, event_key, lock=True)
    assert delivery is not None
    if claimed is None:
        delivery.attempts += 1
        if delivery.status == DeliveryStatus.processed:
            return Received(
                delivery, Outcome(DeliveryStatus.processed, "duplicate", delivery.conversion_id)
            )
        if delivery.status == DeliveryStatus.ignored and delivery.reason != DISABLED_REASON:
            return Received(delivery, Outcome(DeliveryStatus.ignored, delivery.reason))
        # A failed (or held) event sent again is carried out again, as a replay would be.
    if payload is None:
        outcome = Outcome(DeliveryStatus.failed, not_json)
        _settle(delivery, outcome)
        await session.flush()
        return Received(delivery, outcome, not_json=True)
    outcome = await _process(session, integration, delivery, payload, ctx)
    _settle(delivery, outcome)
    await session.flush()
    return Received(delivery, outcome)


async def replay(
    session: AsyncSession,
    integration_id: uuid.UUID,
    delivery_id: uuid.UUID,
    by: Principal,
    ctx: Context,
) -> IntegrationDelivery:
    """Carry out a stored delivery again (a refund that came before its sale, say)."""
    integration = await service.get(session, integration_id, by)
    delivery = await repository.delivery_by_id(session, integration.id, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    if integration.status != IntegrationStatus.enabled:
        raise Conflict("the integration is disabled; enable it before replaying")
    delivery.attempts += 1
    try:
        payload = load_json(delivery.body)
    except PayloadInvalid as exc:
        outcome = Outcome(DeliveryStatus.failed, str(exc))
    else:
        outcome = await _process(session, integration, delivery, payload, ctx)
    _settle(delivery, outcome)
    await session.flush()
    audit.record(
        session,
        by,
        "integration.delivery_replayed",
        "integration",
        integration.id,
        {"delivery_id": delivery.id, "status": outcome.status, "reason": outcome.reason},
    )
    return delivery
