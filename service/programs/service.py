"""Programs: validation of their settings and their storage."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.errors import NotFound, ValidationFailed
from service.fraud.schemas import rules_in_force
from service.kit.money import MoneyError, format_minor, is_currency, parse_amount, to_minor
from service.kit.pagination import PageParams
from service.kit.time import is_time_zone
from service.models import Program
from service.programs import repository
from service.programs.schemas import ProgramCreate, ProgramOut, ProgramUpdate
from service.tracking.urls import (
    DeepLinkRefused,
    allowed_domain_entry,
    authority_of,
    check_http_url,
    is_ip_entry,
    validate_deep_link,
)

# Where the redirect may send a visitor without a link's own destination.
URL_FIELDS = ("default_url", "fallback_url")


def to_out(program: Program) -> ProgramOut:
    """The API shape of a program."""
    return ProgramOut(
        id=program.id,
        name=program.name,
        currency=program.currency,
        time_zone=program.time_zone,
        default_url=program.default_url,
        allowed_domains=list(program.allowed_domains),
        fallback_url=program.fallback_url,
        click_param=program.click_param,
        attribution_window_days=program.attribution_window_days,
        attribution_order=list(program.attribution_order),
        hold_days=program.hold_days,
        deal_days=program.deal_days,
        min_payout=format_minor(program.min_payout_minor, program.currency),
        fraud_rules=rules_in_force(program.fraud_rules).as_list(),
        created_at=program.created_at,
        updated_at=program.updated_at,
    )


def _validate(values: dict[str, Any], currency: str) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    if "time_zone" in values and not is_time_zone(values["time_zone"]):
        errors.append({"field": "time_zone", "message": "not an IANA time zone"})
    for field in ("default_url", "fallback_url"):
        if values.get(field) is not None:
            problem = check_http_url(values[field])
            if problem:
                errors.append({"field": field, "message": problem})
    for i, domain in enumerate(values.get("allowed_domains") or []):
        problem = _domain_problem(domain)
        if problem:
            errors.append({"field": f"allowed_domains[{i}]", "message": problem})
    order = values.get("attribution_order")
    if order is not None and len(set(order)) != len(order):
        errors.append({"field": "attribution_order", "message": "methods must not repeat"})
    if values.get("min_payout") is not None:
        try:
            parse_amount(values["min_payout"], currency)
        except MoneyError as exc:
            errors.append({"field": "min_payout", "message": str(exc)})
    return errors


def _domain_problem(domain: str) -> str | None:
    try:
        canonical = allowed_domain_entry(domain)
    except ValueError as exc:
        return str(exc)
    if is_ip_entry(canonical):
        return "an IP address names no domain; list host names"
    if canonical != domain:
        return f"write it as {canonical!r}"
    return None


def _check_urls(program: Program, fields: Iterable[str]) -> None:
    """Refuse a default or fallback URL that the redirect would not follow."""
    errors = []
    for field in fields:
        url = getattr(program, field)
        if url is None:
            continue
        try:
            validate_deep_link(url, program.allowed_domains)
        except DeepLinkRefused as exc:
            message = "its port is not in allowed_domains (list host:port)"
            if exc.reason != "port not allowed":
                message = f"its host is not in allowed_domains ({exc.reason})"
            errors.append({"field": field, "message": message})
    if errors:
        raise ValidationFailed(errors)


async def create_program(session: AsyncSession, body: ProgramCreate, by: Principal) -> Program:
    """Validate and store a new program."""
    errors = []
    if not is_currency(body.currency):
        errors.append({"field": "currency", "message": "not an ISO 4217 currency code"})
        currency = "USD"
    else:
        currency = body.currency
    errors += _validate(body.model_dump(), currency)
    if errors:
        raise ValidationFailed(errors)
    allowed = body.allowed_domains
    if allowed is None:
        allowed = [authority_of(body.default_url)]
    program = Program(
        name=body.name,
        currency=currency,
        time_zone=body.time_zone,
        default_url=body.default_url,
        allowed_domains=allowed,
        fallback_url=body.fallback_url,
        click_param=body.click_param,
        attribution_window_days=body.attribution_window_days,
        attribution_order=list(body.attribution_order),
        hold_days=body.hold_days,
        deal_days=body.deal_days,
        min_payout_minor=to_minor(parse_amount(body.min_payout, currency), currency),
        fraud_rules=[r.model_dump(mode="json") for r in body.fraud_rules],
    )
    _check_urls(program, URL_FIELDS)
    session.add(program)
    await session.flush()
    await session.refresh(program)
    audit.record(
        session, by, "program.created", "program", program.id, body.model_dump(mode="json")
    )
    return program


async def get_program(session: AsyncSession, program_id: uuid.UUID, by: Principal) -> Program:
    """A program the caller may see, or NotFound."""
    program = await repository.get(session, by, program_id)
    if program is None:
        raise NotFound(f"program {program_id} does not exist")
    return program


async def update_program(
    session: AsyncSession, program_id: uuid.UUID, body: ProgramUpdate, by: Principal
) -> Program:
    """Apply a partial update; the currency is fixed at creation, as the ledger is kept in it."""
    program = await get_program(session, program_id, by)
    changes = body.model_dump(exclude_unset=True)
    for required in ("name", "time_zone", "default_url", "allowed_domains", "click_param"):
        if required in changes and changes[required] is None:
            raise ValidationFailed([{"field": required, "message": "may not be null"}])
    for required in (
        "attribution_window_days",
        "attribution_order",
        "hold_days",
        "deal_days",
        "min_payout",
        "fraud_rules",
    ):
        if required in changes and changes[required] is None:
            raise ValidationFailed([{"field": required, "message": "may not be null"}])
    errors = _validate(changes, program.currency)
    if errors:
        raise ValidationFailed(errors)
    before = to_out(program).model_dump(mode="json")
    for key, value in changes.items():
        if key == "min_payout":
            program.min_payout_minor = to_minor(
                parse_amount(value, program.currency), program.currency
            )
        else:
            setattr(program, key, value)
    # A stored program whose URLs predate these rules stays editable in its other settings.
    touched = (
        URL_FIELDS if "allowed_domains" in changes else [f for f in URL_FIELDS if f in changes]
    )
    _check_urls(program, touched)
    await session.flush()
    await session.refresh(program)
    after = to_out(program).model_dump(mode="json")
    delta = {k: {"from": before[k], "to": after[k]} for k in changes if before[k] != after[k]}
    audit.record(session, by, "program.updated", "program", program.id, delta)
    return program


async def list_programs(
    session: AsyncSession, params: PageParams, by: Principal
) -> tuple[list[Program], str | None]:
    """A page of programs the caller may see."""
    return await repository.page(session, by, params)
