"""Payouts: what is owed, runs that lock it exactly once, paid and failed, and the books."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service import audit
from service.auth.keys import Principal
from service.errors import Conflict, NotFound, ValidationFailed, field_error
from service.kit import csvout
from service.kit.idempotency import request_hash
from service.kit.ids import new_id
from service.kit.money import MoneyError, format_minor, parse_amount, to_minor
from service.kit.pagination import PageParams, page_of, paginate_query
from service.kit.time import rfc3339, utc_now
from service.ledger import repository as commissions
from service.ledger.schemas import entry_out
from service.models import Payout, PayoutRun, PayoutStatus
from service.payouts import repository as repo
from service.payouts.rules import TRANSITIONS, Balance, balances
from service.payouts.schemas import (
    AmountCount,
    MarkFailed,
    MarkPaid,
    PayoutDetail,
    PayoutMismatch,
    PayoutOut,
    Preview,
    PreviewItem,
    PreviewTotals,
    Reconciliation,
    ReconciliationItem,
    ReconciliationTotals,
    Report,
    ReportItem,
    RunCreate,
    RunOut,
    RunPayout,
    RunSummary,
)

# A run may not pay what is not yet available; a client clock a little ahead is tolerated.
CLOCK_SKEW = timedelta(seconds=60)
MAX_KEY_LENGTH = 200


# --- balances --------------------------------------------------------------------------


async def compute_balances(
    session: AsyncSession, by: Principal, as_of: datetime, program_id: uuid.UUID | None
) -> list[Balance]:
    """Per partner and currency: payable, pending, on hold and the minimum that applies."""
    slices = await repo.unpaid_slices(session, by, as_of, program_id)
    program_ids = sorted({s.program_id for s in slices})
    programs = await repo.program_minimums(session, program_ids)
    minimums: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for s in slices:
        minimums[(s.partner_id, s.program_id)] = programs[s.program_id][1]
    # The agreement's terms may set their own min_payout (in the program currency).
    for partner_id, pid, text_value in await repo.agreement_minimums(session, program_ids, as_of):
        if (partner_id, pid) not in minimums:
            continue
        try:
            currency = programs[pid][0]
            minimums[(partner_id, pid)] = to_minor(parse_amount(text_value, currency), currency)
        except MoneyError:
            continue  # terms are validated on write; a bad value falls back to the program's
    return balances(slices, minimums)


async def ensure_program(session: AsyncSession, program_id: uuid.UUID | None) -> None:
    """A 404 for a program_id that names no program."""
    if program_id is None:
        return
    if not await repo.program_minimums(session, [program_id]):
        raise NotFound(f"program {program_id} does not exist")


async def preview(
    session: AsyncSession, by: Principal, as_of: datetime | None, program_id: uuid.UUID | None
) -> Preview:
    """What a run at as_of would pay, hold and carry, per partner and currency."""
    when = as_of or utc_now()
    await ensure_program(session, program_id)
    rows = await compute_balances(session, by, when, program_id)
    partners = await repo.partner_infos(session, sorted({b.partner_id for b in rows}))
    items: list[PreviewItem] = []
    sums: dict[str, dict[str, int]] = {}
    for b in rows:
        info = partners[b.partner_id]
        cur = b.currency
        items.append(
            PreviewItem(
                partner_id=b.partner_id,
                partner_name=info.name,
                partner_email=info.email,
                payout_method=info.payout_method,
                currency=cur,
                payable=format_minor(b.payable, cur),
                pending=format_minor(b.pending, cur),
                on_hold=format_minor(b.on_hold, cur),
                carried=format_minor(b.carried, cur),
                min_payout=format_minor(b.min_payout, cur),
                eligible=b.eligible,
                entry_count=b.payable_count,
            )
        )
        t = sums.setdefault(cur, dict.fromkeys(_PREVIEW_SUMS, 0))
        t["payable"] += b.payable
        t["pending"] += b.pending
        t["on_hold"] += b.on_hold
        t["carried"] += b.carried
        if b.eligible:
            t["eligible_count"] += 1
            t["amount_to_pay"] += b.payable
    items.sort(key=lambda i: (i.partner_name, str(i.partner_id), i.currency))
    totals = {
        cur: PreviewTotals(
            payable=format_minor(t["payable"], cur),
            pending=format_minor(t["pending"], cur),
            on_hold=format_minor(t["on_hold"], cur),
            carried=format_minor(t["carried"], cur),
            eligible_count=t["eligible_count"],
            amount_to_pay=format_minor(t["amount_to_pay"], cur),
        )
        for cur, t in sorted(sums.items())
    }
    return Preview(as_of=when, program_id=program_id, items=items, totals=totals)


_PREVIEW_SUMS = ("payable", "pending", "on_hold", "carried", "eligible_count", "amount_to_pay")


# --- runs ------------------------------------------------------------------------------


def check_idempotency_key(key: str | None) -> str:
    """The Idempotency-Key header, required, printable, at most 200 characters."""
    field = "Idempotency-Key"
    if key is None or not key.strip():
        raise field_error(field, "this header is required to start a payout run")
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH:
        raise field_error(field, f"must be at most {MAX_KEY_LENGTH} characters")
    if not key.isprintable():
        raise field_error(field, "must be printable characters")
    return key


def run_request_hash(body: RunCreate) -> bytes:
    """The hash of a run request: the same instant in any offset hashes the same."""
    return request_hash({"as_of": body.as_of, "program_id": body.program_id})


async def _replay(session: AsyncSession, key: str, digest: bytes) -> PayoutRun | None:
    run = await session.scalar(select(PayoutRun).where(PayoutRun.idempotency_key == key))
    if run is None:
        return None
    if run.request_hash != digest:
        raise Conflict(
            "this Idempotency-Key was used for a different payout run",
            errors=[{"field": "Idempotency-Key", "message": "already used with another body"}],
            extra={"run_id": str(run.id)},
        )
    return run


async def create_run(
    session: AsyncSession, body: RunCreate, key: str, by: Principal
) -> tuple[RunOut, bool]:
    """Start a payout run, or return the one this key started; True when it is new.

    One transaction: the run, one open payout per eligible partner and currency,
    and exactly the payable entries locked into them.
    """
    as_of = body.as_of
    if as_of > utc_now() + CLOCK_SKEW:
        raise field_error("as_of", "must not be in the future: a run pays what is available")
    digest = run_request_hash(body)
    existing = await _replay(session, key, digest)
    if existing is not None:
        return await run_out(session, existing), False
    await ensure_program(session, body.program_id)

    run_id = new_id()
    inserted = await repo.insert_run(
        session,
        run_id=run_id,
        key=key,
        request_hash=digest,
        as_of=as_of,
        program_id=body.program_id,
        created_by=by.key_id,
    )
    if not inserted:
        # The same key committed by a concurrent request while this one waited.
        existing = await _replay(session, key, digest)
        if existing is None:  # pragma: no cover - the conflict implies a committed row
            raise Conflict("a concurrent payout run holds this Idempotency-Key")
        return await run_out(session, existing), False

    await repo.lock_scope(session, body.program_id)
    due = [b for b in await compute_balances(session, by, as_of, body.program_id) if b.eligible]
    targets = [(new_id(), b.partner_id, b.currency) for b in due]
    await repo.insert_payouts(session, run_id, targets)
    locked = await repo.lock_entries(session, targets, as_of, body.program_id)

    # Entries written since the balances were read (a refund's reversal, say) were
    # locked too; a payout they pushed under its minimum is released and dropped.
    minimum = {(b.partner_id, b.currency): b.min_payout for b in due}
    drop = [
        pid
        for pid, partner_id, currency in targets
        if pid not in locked or not _still_due(locked[pid], minimum[(partner_id, currency)])
    ]
    if drop:
        await repo.release_entries(session, drop)
        await repo.delete_payouts(session, drop)

    run = await session.get(PayoutRun, run_id)
    assert run is not None
    out = await run_out(session, run)
    audit.record(
        session,
        by,
        "payout_run.created",
        "payout_run",
        run_id,
        {
            "as_of": rfc3339(as_of),
            "program_id": str(body.program_id) if body.program_id else None,
            "payouts": len(out.payouts),
            "totals": {c: t.model_dump() for c, t in out.totals.items()},
        },
    )
    return out, True


def _still_due(amount: int, min_payout: int) -> bool:
    return amount > 0 and amount >= min_payout


async def get_run(session: AsyncSession, run_id: uuid.UUID, by: Principal) -> PayoutRun:
    """A run the caller may see, or NotFound."""
    run = await session.scalar(repo.readable_runs(by).where(PayoutRun.id == run_id))
    if run is None:
        raise NotFound(f"payout run {run_id} does not exist")
    return run


def _totals(pairs: Iterable[tuple[str, int, int]]) -> dict[str, AmountCount]:
    sums: dict[str, list[int]] = {}
    for currency, amount, count in pairs:
        s = sums.setdefault(currency, [0, 0])
        s[0] += amount
        s[1] += count
    return {
        c: AmountCount(amount=format_minor(a, c), count=n) for c, (a, n) in sorted(sums.items())
    }


async def run_out(session: AsyncSession, run: PayoutRun) -> RunOut:
    """The API shape of a run with its payouts."""
    rows = await repo.run_payouts(session, run.id)
    payouts = [
        RunPayout(
            id=r.id,
            partner_id=r.partner_id,
            partner_name=r.name,
            currency=r.currency,
            amount=format_minor(r.amount_minor, r.currency),
            entry_count=r.entry_count,
            status=r.status,
            period_start=r.period_start,
            period_end=r.period_end,
        )
        for r in rows
    ]
    return RunOut(
        id=run.id,
        as_of=run.as_of,
        program_id=run.program_id,
        idempotency_key=run.idempotency_key,
        created_at=run.created_at,
        payouts=payouts,
        totals=_totals((r.currency, r.amount_minor, 1) for r in rows),
    )


async def list_runs(
    session: AsyncSession, params: PageParams, by: Principal, program_id: uuid.UUID | None
) -> tuple[list[RunSummary], str | None]:
    """A page of the runs the caller may see, oldest first, with their totals."""
    stmt = repo.readable_runs(by)
    if program_id is not None:
        stmt = stmt.where(PayoutRun.program_id == program_id)
    rows = list((await session.scalars(paginate_query(stmt, PayoutRun.id, params))).all())
    rows, cursor = page_of(rows, params)
    totals = await repo.run_totals(session, [r.id for r in rows])
    items = [
        RunSummary(
            id=r.id,
            as_of=r.as_of,
            program_id=r.program_id,
            idempotency_key=r.idempotency_key,
            created_at=r.created_at,
            totals=_totals((c, a, n) for c, (a, n) in totals.get(r.id, {}).items()),
        )
        for r in rows
    ]
    return items, cursor


# --- payouts ---------------------------------------------------------------------------


def payout_out(p: Payout) -> PayoutOut:
    """The API shape of a payout."""
    return PayoutOut(
        id=p.id,
        run_id=p.run_id,
        partner_id=p.partner_id,
        currency=p.currency,
        amount=format_minor(p.amount_minor, p.currency),
        entry_count=p.entry_count,
        status=p.status,  # type: ignore[arg-type]
        period_start=p.period_start,
        period_end=p.period_end,
        payout_method=p.payout_method,
        reference=p.reference,
        paid_at=p.paid_at,
        failed_at=p.failed_at,
        failure_reason=p.failure_reason,
        created_at=p.created_at,
        updated_at=p.updated_at,
    )


async def get_payout(
    session: AsyncSession, payout_id: uuid.UUID, by: Principal, *, for_update: bool = False
) -> Payout:
    """A payout the caller may see, or NotFound (another partner's payout included)."""
    stmt = repo.readable(by).where(Payout.id == payout_id)
    payout = await session.scalar(stmt.with_for_update(of=Payout) if for_update else stmt)
    if payout is None:
        raise NotFound(f"payout {payout_id} does not exist")
    return payout


async def payout_detail(session: AsyncSession, payout_id: uuid.UUID, by: Principal) -> PayoutDetail:
    """A payout with the ledger entries locked into it."""
    payout = await get_payout(session, payout_id, by)
    entries = await commissions.of_payout(session, by, payout.id)
    return PayoutDetail(
        **payout_out(payout).model_dump(),
        entries=[entry_out(e, by) for e in entries],
    )


async def list_payouts(
    session: AsyncSession,
    params: PageParams,
    by: Principal,
    *,
    partner_id: uuid.UUID | None,
    status: str | None,
    run_id: uuid.UUID | None,
) -> tuple[list[Payout], str | None]:
    """A page of the payouts the caller may see; a partner key sees its own only."""
    stmt = repo.readable(by)
    if partner_id is not None:
        stmt = stmt.where(Payout.partner_id == partner_id)
    if status is not None:
        stmt = stmt.where(Payout.status == status)
    if run_id is not None:
        stmt = stmt.where(Payout.run_id == run_id)
    rows = list((await session.scalars(paginate_query(stmt, Payout.id, params))).all())
    return page_of(rows, params)


def _transition(payout: Payout, target: PayoutStatus) -> None:
    if target not in TRANSITIONS[PayoutStatus(payout.status)]:
        raise Conflict(
            f"a {payout.status} payout cannot be marked {target}",
            errors=[{"field": "status", "message": "transition not allowed"}],
            extra={"status_now": payout.status},
        )


async def mark_paid(
    session: AsyncSession, payout_id: uuid.UUID, body: MarkPaid, by: Principal
) -> Payout:
    """open -> paid, with the transfer reference; final."""
    paid_at = body.paid_at or utc_now()
    if paid_at > utc_now() + CLOCK_SKEW:
        raise field_error("paid_at", "must not be in the future")
    payout = await get_payout(session, payout_id, by, for_update=True)
    _transition(payout, PayoutStatus.paid)
    payout.status = PayoutStatus.paid
    payout.reference = body.reference
    payout.paid_at = paid_at
    await session.flush()
    await session.refresh(payout)
    audit.record(
        session,
        by,
        "payout.paid",
        "payout",
        payout.id,
        {"reference": body.reference, "paid_at": rfc3339(paid_at)},
    )
    return payout


async def mark_failed(
    session: AsyncSession, payout_id: uuid.UUID, body: MarkFailed, by: Principal
) -> Payout:
    """open -> failed; its entries go back to the unpaid balance for the next run."""
    payout = await get_payout(session, payout_id, by, for_update=True)
    _transition(payout, PayoutStatus.failed)
    payout.status = PayoutStatus.failed
    payout.failed_at = utc_now()
    payout.failure_reason = body.reason
    await session.flush()
    released = await repo.release_entries(session, [payout.id])
    await session.refresh(payout)
    audit.record(
        session,
        by,
        "payout.failed",
        "payout",
        payout.id,
        {"reason": body.reason, "entries_released": released},
    )
    return payout


# --- reconciliation and reports -------------------------------------------------------


async def reconciliation(session: AsyncSession, program_id: uuid.UUID | None) -> Reconciliation:
    """sum(entries) = paid + open + unpaid per partner and currency, and per payout."""
    await ensure_program(session, program_id)
    mismatches = [
        PayoutMismatch(
            payout_id=r[0],
            partner_id=r[1],
            currency=r[2],
            status=r[3],
            amount=format_minor(r[4], r[2]),
            entries_total=format_minor(r[5], r[2]),
        )
        for r in await repo.payout_mismatches(session, program_id)
    ]
    off = {(m.partner_id, m.currency) for m in mismatches}
    items: list[ReconciliationItem] = []
    sums: dict[str, list[int]] = {}
    unbalanced: set[str] = set()
    for partner_id, cur, total, paid, open_, unpaid in await repo.reconciliation_rows(
        session, program_id
    ):
        ok = total == paid + open_ + unpaid and (partner_id, cur) not in off
        if not ok:
            unbalanced.add(cur)
        items.append(
            ReconciliationItem(
                partner_id=partner_id,
                currency=cur,
                entries_total=format_minor(total, cur),
                paid=format_minor(paid, cur),
                open=format_minor(open_, cur),
                unpaid=format_minor(unpaid, cur),
                balanced=ok,
            )
        )
        s = sums.setdefault(cur, [0, 0, 0, 0])
        for i, v in enumerate((total, paid, open_, unpaid)):
            s[i] += v
    totals = {
        cur: ReconciliationTotals(
            entries_total=format_minor(s[0], cur),
            paid=format_minor(s[1], cur),
            open=format_minor(s[2], cur),
            unpaid=format_minor(s[3], cur),
            balanced=s[0] == s[1] + s[2] + s[3] and cur not in unbalanced,
        )
        for cur, s in sorted(sums.items())
    }
    return Reconciliation(
        program_id=program_id,
        items=items,
        totals=totals,
        mismatches=mismatches,
        balanced=not mismatches and all(i.balanced for i in items),
    )


async def report(session: AsyncSession, start: datetime, end: datetime) -> Report:
    """What was paid with paid_at in [start, end), per partner and currency, for the books."""
    if end <= start:
        raise ValidationFailed([{"field": "to", "message": "must be later than from"}])
    rows = await repo.paid_report(session, start, end)
    items = [
        ReportItem(
            partner_id=r[0],
            partner_name=r[1],
            partner_email=r[2],
            currency=r[3],
            amount=format_minor(r[4], r[3]),
            payout_count=r[5],
            references=[ref for ref in r[6] if ref is not None],
        )
        for r in rows
    ]
    return Report(
        from_=start,
        to=end,
        items=items,
        totals=_totals((r[3], r[4], r[5]) for r in rows),
    )


# --- CSV -------------------------------------------------------------------------------

PREVIEW_COLUMNS = (
    "partner_id",
    "partner_name",
    "partner_email",
    "payout_method",
    "currency",
    "payable",
    "pending",
    "on_hold",
    "carried",
    "min_payout",
    "eligible",
    "entry_count",
)
RUN_COLUMNS = (
    "run_id",
    "payout_id",
    "partner_id",
    "partner_name",
    "partner_email",
    "currency",
    "amount",
    "entry_count",
    "period_start",
    "period_end",
    "payout_method",
    "payout_details",
    "status",
)
REPORT_COLUMNS = (
    "partner_id",
    "partner_name",
    "partner_email",
    "currency",
    "amount",
    "payout_count",
    "references",
)


# Amounts may be negative: they are numbers, never formulas, so they go as they are.
_AMOUNTS = frozenset(
    {
        "payable",
        "pending",
        "on_hold",
        "carried",
        "min_payout",
        "amount",
        "entry_count",
        "payout_count",
    }
)


def preview_csv(p: Preview) -> Iterator[str]:
    """The preview as CSV, one row per partner and currency, columns in PREVIEW_COLUMNS order."""
    return csvout.lines(
        PREVIEW_COLUMNS,
        ([getattr(i, c) for c in PREVIEW_COLUMNS] for i in p.items),
        _AMOUNTS,
    )


async def run_csv(session: AsyncSession, run: PayoutRun) -> Iterator[str]:
    """A run's export: one row per payout, with what is needed to make the transfer."""
    rows = await repo.run_payouts(session, run.id)
    return csvout.lines(
        RUN_COLUMNS,
        (
            (
                run.id,
                r.id,
                r.partner_id,
                r.name,
                r.email,
                r.currency,
                format_minor(r.amount_minor, r.currency),
                r.entry_count,
                r.period_start,
                r.period_end,
                r.payout_method,
                json.dumps(r.payout_details, sort_keys=True, separators=(",", ":")),
                r.status,
            )
            for r in rows
        ),
        _AMOUNTS,
    )


def report_csv(r: Report) -> Iterator[str]:
    """The paid report as CSV; references joined with csvout.LIST_SEPARATOR."""
    return csvout.lines(
        REPORT_COLUMNS,
        (
            (
                i.partner_id,
                i.partner_name,
                i.partner_email,
                i.currency,
                i.amount,
                i.payout_count,
                csvout.join_list(i.references),
            )
            for i in r.items
        ),
        _AMOUNTS,
    )
