"""Every query of payouts. Set-based SQL: a run over a million entries never loads them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, cast, false, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.keys import Principal
from service.auth.scope import bound_programs, in_programs, is_partner, of_partner
from service.ledger import repository as commissions
from service.models import CommissionEntry, Conversion, ConversionStatus, Payout, PayoutRun
from service.payouts.rules import ProgramSlice

# Advisory lock namespaces (first key of pg_advisory_xact_lock(int, int)).
_LOCK_ALL_PROGRAMS = 0x5041_5901
_LOCK_ONE_PROGRAM = 0x5041_5902


def readable(principal: Principal) -> Select[Payout]:
    """The payouts a key may read: a partner its own; a bound key only payouts of its programs.

    A payout may span programs, so a key bound to some programs reads a payout only when
    none of its entries is of another program, and it is of one of the key's programs
    (by its entries, or, once they are released, by its run).
    """
    stmt = select(Payout).where(of_partner(principal, Payout.partner_id))
    if bound_programs(principal) is None:
        return stmt
    entries = select(CommissionEntry.id).where(CommissionEntry.payout_id == Payout.id)
    mine = in_programs(principal, CommissionEntry.program_id)
    run_mine = select(PayoutRun.id).where(
        PayoutRun.id == Payout.run_id, in_programs(principal, PayoutRun.program_id)
    )
    return stmt.where(
        ~entries.where(~mine).exists(), or_(entries.where(mine).exists(), run_mine.exists())
    )


def readable_runs(principal: Principal) -> Select[PayoutRun]:
    """The runs a key may read: none for a partner (a run lists every partner's payouts)."""
    if is_partner(principal):
        return select(PayoutRun).where(false())
    return select(PayoutRun).where(in_programs(principal, PayoutRun.program_id))


async def unpaid_slices(
    session: AsyncSession, principal: Principal, as_of: datetime, program_id: uuid.UUID | None
) -> list[ProgramSlice]:
    """Unpaid readable entries summed per partner, currency and program, split by state."""
    e = CommissionEntry
    # An entry is held while its conversion is under review; rejected conversions
    # have written their reversals, so their entries stay payable and net out.
    held = Conversion.id.is_not(None)
    due = and_(~held, e.available_at <= as_of)
    later = and_(~held, e.available_at > as_of)

    def total(when: ColumnElement[bool]) -> ColumnElement[int]:
        return cast(func.coalesce(func.sum(e.amount_minor).filter(when), 0), BigInteger)

    stmt = (
        commissions.readable(principal)
        .with_only_columns(
            e.partner_id,
            e.currency,
            e.program_id,
            total(due),
            func.count().filter(due),
            total(later),
            total(held),
        )
        .outerjoin(
            Conversion,
            and_(Conversion.id == e.conversion_id, Conversion.status == ConversionStatus.review),
        )
        .where(e.payout_id.is_(None))
        .group_by(e.partner_id, e.currency, e.program_id)
    )
    if program_id is not None:
        stmt = stmt.where(e.program_id == program_id)
    # Ten thousand partners' groups fit in memory; the default 4MB would sort on disk.
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    rows = await session.execute(stmt)
    return [ProgramSlice(*row) for row in rows]


async def program_minimums(
    session: AsyncSession, program_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, int]]:
    """Currency and min_payout_minor of each program."""
    rows = await session.execute(
        text("SELECT id, currency, min_payout_minor FROM programs WHERE id = ANY(:ids)"),
        {"ids": list(program_ids)},
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def agreement_minimums(
    session: AsyncSession, program_ids: Sequence[uuid.UUID], as_of: datetime
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(partner, program, min_payout text) from the agreement version in force at as_of."""
    rows = await session.execute(
        text(
            """
            SELECT partner_id, program_id, min_payout FROM (
              SELECT DISTINCT ON (a.partner_id, a.program_id)
                     a.partner_id, a.program_id, v.terms->>'min_payout' AS min_payout
              FROM agreements a JOIN agreement_versions v ON v.agreement_id = a.id
              WHERE a.program_id = ANY(:ids) AND v.effective_from <= :as_of
              ORDER BY a.partner_id, a.program_id, v.effective_from DESC, v.version DESC
            ) t WHERE min_payout IS NOT NULL
            """
        ),
        {"ids": list(program_ids), "as_of": as_of},
    )
    return [(r[0], r[1], r[2]) for r in rows]


@dataclass(frozen=True)
class PartnerInfo:
    name: str
    email: str
    payout_method: str | None


async def partner_infos(
    session: AsyncSession, partner_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PartnerInfo]:
    """Name, email and payout method of each partner."""
    rows = await session.execute(
        text("SELECT id, name, email, payout_method FROM partners WHERE id = ANY(:ids)"),
        {"ids": list(partner_ids)},
    )
    return {r[0]: PartnerInfo(r[1], r[2], r[3]) for r in rows}


async def lock_scope(session: AsyncSession, program_id: uuid.UUID | None) -> None:
    """Serialise runs over overlapping scopes until the transaction ends.

    A run over all programs excludes every other run; runs over different
    programs proceed side by side.
    """
    if program_id is None:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": _LOCK_ALL_PROGRAMS}
        )
        return
    await session.execute(
        text("SELECT pg_advisory_xact_lock_shared(:ns, 0)"), {"ns": _LOCK_ALL_PROGRAMS}
    )
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, hashtext(:pid))"),
        {"ns": _LOCK_ONE_PROGRAM, "pid": str(program_id)},
    )


async def insert_run(
    session: AsyncSession,
    *,
    run_id: uuid.UUID,
    key: str,
    request_hash: bytes,
    as_of: datetime,
    program_id: uuid.UUID | None,
    created_by: uuid.UUID | None,
) -> bool:
    """Insert the run row; False when another run already holds the key.

    ON CONFLICT waits for a concurrent insert of the same key to commit, so two
    identical requests at once yield one run.
    """
    row = await session.execute(
        text(
            """
            INSERT INTO payout_runs (id, idempotency_key, request_hash, as_of, program_id, created_by)
            VALUES (:id, :key, :hash, :as_of, :program_id, :created_by)
            ON CONFLICT (idempotency_key) DO NOTHING
            RETURNING id
            """
        ),
        {
            "id": run_id,
            "key": key,
            "hash": request_hash,
            "as_of": as_of,
            "program_id": program_id,
            "created_by": created_by,
        },
    )
    return row.first() is not None


async def insert_payouts(
    session: AsyncSession,
    run_id: uuid.UUID,
    targets: Sequence[tuple[uuid.UUID, uuid.UUID, str]],
) -> None:
    """Empty open payouts (id, partner, currency), with the partner's payout method copied."""
    if not targets:
        return
    await session.execute(
        text(
            """
            INSERT INTO payouts (id, run_id, partner_id, currency, amount_minor, entry_count,
                                 status, payout_method, payout_details)
            SELECT m.payout_id, :run_id, m.partner_id, m.currency, 0, 0, 'open',
                   p.payout_method, p.payout_details
            FROM unnest(CAST(:payout_ids AS uuid[]), CAST(:partner_ids AS uuid[]),
                        CAST(:currencies AS text[])) AS m(payout_id, partner_id, currency)
            JOIN partners p ON p.id = m.partner_id
            """
        ),
        {
            "run_id": run_id,
            "payout_ids": [t[0] for t in targets],
            "partner_ids": [t[1] for t in targets],
            "currencies": [t[2] for t in targets],
        },
    )


async def lock_entries(
    session: AsyncSession,
    targets: Sequence[tuple[uuid.UUID, uuid.UUID, str]],
    as_of: datetime,
    program_id: uuid.UUID | None,
) -> dict[uuid.UUID, int]:
    """Lock the payable entries into their payouts and total each payout from what was locked.

    `payout_id IS NULL` is re-checked on every row the UPDATE touches (read
    committed re-evaluates it after waiting), so no entry is locked twice.
    Returns the amount locked per payout; payouts that locked nothing are absent.
    """
    if not targets:
        return {}
    program_filter = "AND e.program_id = :program_id" if program_id is not None else ""
    params: dict[str, Any] = {
        "as_of": as_of,
        "payout_ids": [t[0] for t in targets],
        "partner_ids": [t[1] for t in targets],
        "currencies": [t[2] for t in targets],
    }
    if program_id is not None:
        params["program_id"] = program_id
    # The planner takes unnest() for 100 rows and would walk each partner's whole
    # history by index, once per partner; one hash join over the unpaid entries is
    # what thousands of partners need.
    await session.execute(text("SET LOCAL enable_nestloop = off"))
    rows = await session.execute(
        text(
            f"""
            WITH m AS (
              SELECT * FROM unnest(CAST(:payout_ids AS uuid[]), CAST(:partner_ids AS uuid[]),
                                   CAST(:currencies AS text[])) AS m(payout_id, partner_id, currency)
            ), locked AS (
              UPDATE commission_entries e SET payout_id = m.payout_id
              FROM m
              WHERE e.partner_id = m.partner_id AND e.currency = m.currency
                AND e.payout_id IS NULL AND e.available_at <= :as_of {program_filter}
                AND NOT EXISTS (SELECT 1 FROM conversions c
                                WHERE c.id = e.conversion_id AND c.status = 'review')
              RETURNING e.payout_id, e.amount_minor, e.available_at
            ), totals AS (
              SELECT payout_id, sum(amount_minor)::bigint AS amount, count(*) AS n,
                     min(available_at) AS first_at, max(available_at) AS last_at
              FROM locked GROUP BY payout_id
            )
            UPDATE payouts p
            SET amount_minor = t.amount, entry_count = t.n,
                period_start = t.first_at, period_end = t.last_at
            FROM totals t WHERE p.id = t.payout_id
            RETURNING p.id, p.amount_minor
            """
        ),
        params,
    )
    locked = {r[0]: r[1] for r in rows}
    await session.execute(text("SET LOCAL enable_nestloop = on"))
    return locked


async def release_entries(session: AsyncSession, payout_ids: Sequence[uuid.UUID]) -> int:
    """Give the entries of these payouts back to the unpaid balance."""
    if not payout_ids:
        return 0
    result = await session.execute(
        text("UPDATE commission_entries SET payout_id = NULL WHERE payout_id = ANY(:ids)"),
        {"ids": list(payout_ids)},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_payouts(session: AsyncSession, payout_ids: Sequence[uuid.UUID]) -> None:
    """Drop payouts of a run in progress that ended up with nothing to pay."""
    if payout_ids:
        await session.execute(
            text("DELETE FROM payouts WHERE id = ANY(:ids)"), {"ids": list(payout_ids)}
        )


async def run_payouts(session: AsyncSession, run_id: uuid.UUID) -> list[Any]:
    """The payouts of a run with their partner's name and email, in a stable order."""
    rows = await session.execute(
        text(
            """
            SELECT p.id, p.partner_id, pa.name, pa.email, p.currency, p.amount_minor,
                   p.entry_count, p.status, p.period_start, p.period_end,
                   p.payout_method, p.payout_details
            FROM payouts p JOIN partners pa ON pa.id = p.partner_id
            WHERE p.run_id = :run_id
            ORDER BY pa.name, p.partner_id, p.currency
            """
        ),
        {"run_id": run_id},
    )
    return list(rows)


async def run_totals(
    session: AsyncSession, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, tuple[int, int]]]:
    """Amount and count of payouts per run and currency."""
    rows = await session.execute(
        text(
            """
            SELECT run_id, currency, sum(amount_minor)::bigint, count(*)
            FROM payouts WHERE run_id = ANY(:ids) GROUP BY run_id, currency
            ORDER BY run_id, currency
            """
        ),
        {"ids": list(run_ids)},
    )
    out: dict[uuid.UUID, dict[str, tuple[int, int]]] = {}
    for run_id, currency, amount, count in rows:
        out.setdefault(run_id, {})[currency] = (amount, count)
    return out


async def reconciliation_rows(
    session: AsyncSession, program_id: uuid.UUID | None
) -> list[tuple[uuid.UUID, str, int, int, int, int]]:
    """(partner, currency, entries_total, paid, open, unpaid) per partner and currency.

    Over all programs, paid and open come from the payouts' own amounts, so the
    identity checks the ledger against the payouts rather than against itself.
    A payout may span programs, so for one program they come from its entries.
    """
    if program_id is None:
        sql = """
        WITH e AS (
          SELECT partner_id, currency, sum(amount_minor)::bigint AS total,
                 COALESCE(sum(amount_minor) FILTER (WHERE payout_id IS NULL), 0)::bigint AS unpaid
          FROM commission_entries GROUP BY partner_id, currency
        ), p AS (
          SELECT partner_id, currency,
                 COALESCE(sum(amount_minor) FILTER (WHERE status = 'paid'), 0)::bigint AS paid,
                 COALESCE(sum(amount_minor) FILTER (WHERE status = 'open'), 0)::bigint AS open
          FROM payouts GROUP BY partner_id, currency
        )
        SELECT COALESCE(e.partner_id, p.partner_id), COALESCE(e.currency, p.currency),
               COALESCE(e.total, 0), COALESCE(p.paid, 0), COALESCE(p.open, 0),
               COALESCE(e.unpaid, 0)
        FROM e FULL JOIN p ON p.partner_id = e.partner_id AND p.currency = e.currency
        ORDER BY 1, 2
        """
        rows = await session.execute(text(sql))
    else:
        sql = """
        SELECT e.partner_id, e.currency, sum(e.amount_minor)::bigint,
               COALESCE(sum(e.amount_minor) FILTER (WHERE p.status = 'paid'), 0)::bigint,
               COALESCE(sum(e.amount_minor) FILTER (WHERE p.status = 'open'), 0)::bigint,
               COALESCE(sum(e.amount_minor) FILTER (WHERE e.payout_id IS NULL), 0)::bigint
        FROM commission_entries e LEFT JOIN payouts p ON p.id = e.payout_id
        WHERE e.program_id = :program_id
        GROUP BY e.partner_id, e.currency ORDER BY 1, 2
        """
        rows = await session.execute(text(sql), {"program_id": program_id})
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def payout_mismatches(session: AsyncSession, program_id: uuid.UUID | None) -> list[Any]:
    """Payouts whose amount or count differs from their entries; failed ones still holding any."""
    scope = ""
    params: dict[str, Any] = {}
    if program_id is not None:
        scope = (
            "AND (p.id IN (SELECT payout_id FROM commission_entries WHERE program_id = :pid"
            " AND payout_id IS NOT NULL) OR r.program_id = :pid)"
        )
        params["pid"] = program_id
    rows = await session.execute(
        text(
            f"""
            SELECT p.id, p.partner_id, p.currency, p.status, p.amount_minor,
                   COALESCE(s.total, 0)
            FROM payouts p
            JOIN payout_runs r ON r.id = p.run_id
            LEFT JOIN (
              SELECT payout_id, sum(amount_minor)::bigint AS total, count(*) AS n
              FROM commission_entries WHERE payout_id IS NOT NULL GROUP BY payout_id
            ) s ON s.payout_id = p.id
            WHERE ((p.status IN ('open', 'paid')
                    AND (p.amount_minor <> COALESCE(s.total, 0) OR p.entry_count <> COALESCE(s.n, 0)))
                   OR (p.status = 'failed' AND COALESCE(s.n, 0) > 0))
              {scope}
            ORDER BY p.id
            """
        ),
        params,
    )
    return list(rows)


async def paid_report(session: AsyncSession, start: datetime, end: datetime) -> list[Any]:
    """Paid payouts with paid_at in [start, end), per partner and currency."""
    rows = await session.execute(
        text(
            """
            SELECT p.partner_id, pa.name, pa.email, p.currency, sum(p.amount_minor)::bigint,
                   count(*), array_agg(p.reference ORDER BY p.paid_at, p.id)
            FROM payouts p JOIN partners pa ON pa.id = p.partner_id
            WHERE p.status = 'paid' AND p.paid_at >= :start AND p.paid_at < :end
            GROUP BY p.partner_id, pa.name, pa.email, p.currency
            ORDER BY pa.name, p.partner_id, p.currency
            """
        ),
        {"start": start, "end": end},
    )
    return list(rows)
