"""Agreements: versioned terms, one agreement per partner and program at any instant."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, join, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.agreements import repository
from service.agreements.schemas import (
    AgreementCreate,
    AgreementOut,
    Termination,
    VersionCreate,
    VersionOut,
)
from service.agreements.terms import TermsInvalid, terms_to_json, validate_terms
from service.auth.keys import Principal
from service.commissions.terms import Terms
from service.errors import Conflict, NotFound, ValidationFailed
from service.kit.columns import Columns
from service.kit.driver import Prepared
from service.kit.pagination import PageParams
from service.kit.time import utc_now
from service.models import Agreement, AgreementVersion, Partner, PartnerStatus, Program

# A request's "now" may trail the server's by a moment; this much is not "the past".
CLOCK_SLACK = timedelta(seconds=5)


@dataclass(frozen=True)
class InForce:
    """The agreement and version that govern a partner's conversion at an instant."""

    agreement: Agreement
    version: AgreementVersion
    terms: Terms


def _validated(raw: dict[str, object], currency: str) -> dict[str, object]:
    try:
        return terms_to_json(validate_terms(raw, currency))
    except TermsInvalid as exc:
        raise ValidationFailed(exc.errors) from exc


# A stored version never changes, so its parsed terms are kept by (agreement, version):
# a conversion does not pay for validating the same JSON again.
_TERMS_CACHE_SIZE = 10_000
_terms_cache: OrderedDict[tuple[uuid.UUID, int, str], Terms] = OrderedDict()


def load_terms(version: AgreementVersion, currency: str) -> Terms:
    """The engine's Terms of a stored version (validated when written, parsed once)."""
    key = (version.agreement_id, version.version, currency)
    terms = _terms_cache.get(key)
    if terms is not None:
        _terms_cache.move_to_end(key)
        return terms
    terms = validate_terms(version.terms, currency)
    _terms_cache[key] = terms
    if len(_terms_cache) > _TERMS_CACHE_SIZE:
        _terms_cache.popitem(last=False)
    return terms


def status_at(agreement: Agreement, at: datetime) -> str:
    """scheduled, active or terminated at an instant."""
    if agreement.terminated_at is not None and at >= agreement.terminated_at:
        return "terminated"
    if at < agreement.starts_at:
        return "scheduled"
    return "active"


async def _versions(session: AsyncSession, agreement_id: uuid.UUID) -> list[AgreementVersion]:
    rows = await session.scalars(
        select(AgreementVersion)
        .where(AgreementVersion.agreement_id == agreement_id)
        .order_by(AgreementVersion.version)
    )
    return list(rows.all())


def version_in_force(
    rows: Iterable[tuple[Agreement, AgreementVersion]], at: datetime
) -> tuple[Agreement, AgreementVersion] | None:
    """Of (agreement, version) pairs, the one governing `at`: the agreement active then,
    its latest version to take effect by then; None when no agreement was active."""
    found: tuple[Agreement, AgreementVersion] | None = None
    for agreement, version in rows:
        if status_at(agreement, at) != "active" or version.effective_from > at:
            continue
        # Versions take effect in their order (add_version refuses an earlier start).
        if found is None or version.version > found[1].version:
            found = (agreement, version)
    return found


async def to_out(session: AsyncSession, agreement: Agreement) -> AgreementOut:
    """The API shape of an agreement with all its versions."""
    return (await to_outs(session, [agreement]))[0]


async def to_outs(session: AsyncSession, agreements: list[Agreement]) -> list[AgreementOut]:
    """The API shape of agreements, their versions read in one query."""
    versions = await repository.versions_of(session, [a.id for a in agreements])
    now = utc_now()
    return [_out(a, versions[a.id], now) for a in agreements]


def _out(agreement: Agreement, versions: list[AgreementVersion], now: datetime) -> AgreementOut:
    found = version_in_force(((agreement, v) for v in versions), now)
    current = found[1] if found else None
    return AgreementOut(
        id=agreement.id,
        partner_id=agreement.partner_id,
        program_id=agreement.program_id,
        starts_at=agreement.starts_at,
        terminated_at=agreement.terminated_at,
        termination_reason=agreement.termination_reason,
        status=status_at(agreement, now),
        current_version=current.version if current else None,
        versions=[
            VersionOut(
                version=v.version,
                effective_from=v.effective_from,
                terms=v.terms,
                created_at=v.created_at,
            )
            for v in versions
        ],
        created_at=agreement.created_at,
    )


async def _lock_pair(session: AsyncSession, partner_id: uuid.UUID, program_id: uuid.UUID) -> None:
    # Serialises agreement writes for one partner and program across instances.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
        {"k": f"agreement:{partner_id}:{program_id}"},
    )


def _not_past(field: str, at: datetime) -> None:
    if at < utc_now() - CLOCK_SLACK:
        raise ValidationFailed([{"field": field, "message": "must not be in the past"}])


async def create_agreement(
    session: AsyncSession, partner_id: uuid.UUID, body: AgreementCreate, by: Principal
) -> Agreement:
    """Bind a partner to a program with a first version of terms."""
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} does not exist")
    program = await session.get(Program, body.program_id)
    if program is None:
        raise ValidationFailed([{"field": "program_id", "message": "no such program"}])
    if partner.status == PartnerStatus.terminated:
        raise Conflict("a terminated partner cannot enter an agreement")
    effective_from = body.effective_from or utc_now()
    terms = _validated(body.terms, program.currency)
    await _lock_pair(session, partner_id, program.id)
    overlapping = await session.scalar(
        select(Agreement.id).where(
            Agreement.partner_id == partner_id,
            Agreement.program_id == program.id,
            or_(Agreement.terminated_at.is_(None), Agreement.terminated_at > effective_from),
        )
    )
    if overlapping is not None:
        raise Conflict(
            f"agreement {overlapping} already binds this partner to this program; "
            "add a version to it, or terminate it first",
            extra={"agreement_id": str(overlapping)},
        )
    agreement = Agreement(partner_id=partner_id, program_id=program.id, starts_at=effective_from)
    session.add(agreement)
    await session.flush()
    session.add(
        AgreementVersion(
            agreement_id=agreement.id, version=1, effective_from=effective_from, terms=terms
        )
    )
    await session.flush()
    await session.refresh(agreement)
    audit.record(session, by, "agreement.created", "agreement", agreement.id, {"terms": terms})
    return agreement


async def get_agreement(session: AsyncSession, agreement_id: uuid.UUID, by: Principal) -> Agreement:
    """An agreement the key may read (a partner its own, in its programs), or NotFound."""
    agreement = await repository.get(session, by, agreement_id)
    if agreement is None:
        raise NotFound(f"agreement {agreement_id} does not exist")
    return agreement


async def add_version(
    session: AsyncSession, agreement_id: uuid.UUID, body: VersionCreate, by: Principal
) -> Agreement:
    """New terms from now or later; versions already in force are never changed."""
    agreement = await get_agreement(session, agreement_id, by)
    program = await session.get(Program, agreement.program_id)
    assert program is not None
    effective_from = body.effective_from or utc_now()
    if body.effective_from is not None:
        _not_past("effective_from", effective_from)
    terms = _validated(body.terms, program.currency)
    await _lock_pair(session, agreement.partner_id, agreement.program_id)
    await session.refresh(agreement)
    if agreement.terminated_at is not None and agreement.terminated_at <= effective_from:
        raise Conflict("the agreement is terminated by then")
    versions = await _versions(session, agreement.id)
    last = versions[-1]
    if effective_from < last.effective_from:
        raise ValidationFailed(
            [
                {
                    "field": "effective_from",
                    "message": f"must not precede version {last.version}'s "
                    f"effective_from ({last.effective_from.isoformat()})",
                }
            ]
        )
    session.add(
        AgreementVersion(
            agreement_id=agreement.id,
            version=last.version + 1,
            effective_from=effective_from,
            terms=terms,
        )
    )
    await session.flush()
    audit.record(
        session,
        by,
        "agreement.version_added",
        "agreement",
        agreement.id,
        {"version": last.version + 1, "effective_from": effective_from.isoformat(), "terms": terms},
    )
    return agreement


async def terminate(
    session: AsyncSession, agreement_id: uuid.UUID, body: Termination, by: Principal
) -> Agreement:
    """End an agreement at a time (now or later); conversions after it earn nothing."""
    agreement = await get_agreement(session, agreement_id, by)
    at = body.at or utc_now()
    if body.at is not None:
        _not_past("at", at)
    await _lock_pair(session, agreement.partner_id, agreement.program_id)
    await session.refresh(agreement)
    if agreement.terminated_at is not None and agreement.terminated_at <= utc_now():
        raise Conflict("the agreement is already terminated")
    agreement.terminated_at = max(at, agreement.starts_at)
    agreement.termination_reason = body.reason
    await session.flush()
    await session.refresh(agreement)
    audit.record(
        session,
        by,
        "agreement.terminated",
        "agreement",
        agreement.id,
        {"at": agreement.terminated_at.isoformat(), "reason": body.reason},
    )
    return agreement


async def list_agreements(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    partner_id: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
) -> tuple[list[Agreement], str | None]:
    """A page of the agreements the key may read, filtered."""
    return await repository.page(session, by, params, partner_id=partner_id, program_id=program_id)


# Built once: the statement runs for every conversion. The rows come back as detached
# objects, read-only to the callers.
_AGREEMENT = Columns(Agreement)
_VERSION = Columns(AgreementVersion)
# A pair's agreements joined with their versions, for `OF_PAIR`'s partner_id and
# program_id: `PAIR_COLUMNS` of them make the rows in_force_of reads, so that a statement
# reading them with something else (ledger.service) needs no round trip of its own.
PAIR = join(Agreement, AgreementVersion, AgreementVersion.agreement_id == Agreement.id)
OF_PAIR = and_(
    Agreement.partner_id == bindparam("partner_id", type_=Agreement.partner_id.type),
    Agreement.program_id == bindparam("program_id", type_=Agreement.program_id.type),
)
PAIR_COLUMNS = (*_AGREEMENT.columns, *_VERSION.columns)
_PAIR = Prepared(select(*PAIR_COLUMNS).select_from(PAIR).where(OF_PAIR))


async def in_force(
    session: AsyncSession,
    partner_id: uuid.UUID,
    program_id: uuid.UUID,
    at: datetime,
    currency: str,
) -> InForce | None:
    """The agreement version governing a partner's conversion at `at`, or None."""
    # One round trip: the pair's agreements with their versions, of which version_in_force
    # picks; a pair has few of either.
    rows = await _PAIR.fetch(session, {"partner_id": partner_id, "program_id": program_id})
    return in_force_of(rows, 0, at, currency)


def in_force_of(
    rows: Sequence[Sequence[Any]], start: int, at: datetime, currency: str
) -> InForce | None:
    """in_force over rows of `PAIR_COLUMNS` from column `start`; a row whose agreement is
    NULL (an outer join that found none) holds none."""
    pairs = [
        (_AGREEMENT.detached(row, start), _VERSION.detached(row, start + len(_AGREEMENT)))
        for row in rows
        if row[start] is not None
    ]
    found = version_in_force(pairs, at)
    if found is None:
        return None
    agreement, version = found
    return InForce(agreement=agreement, version=version, terms=load_terms(version, currency))
