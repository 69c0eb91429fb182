"""What a new conversion with a partner reads and decides: the fraud rules' hits over its
facts, and what it earns. One statement reads the facts, the month's state (locking the
month's row) and the pair's agreements."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import true
from sqlalchemy.ext.asyncio import AsyncSession

from service.conversions.schemas import ConversionCreate
from service.fraud import repository as facts
from service.fraud import rules as fraud
from service.fraud.schemas import rules_in_force
from service.kit.driver import Prepared
from service.ledger import service as ledger
from service.models import Conversion, Partner, Program
from service.tracking.clickid import ClickId


@functools.lru_cache(maxsize=64)
def facts_terms_and_month(shape: facts.Shape | None) -> Prepared:
    """What a new conversion with a partner reads, in one statement: the pair's terms with
    the month's state, the month's row locked (ledger.TERMS_AND_MONTH), and after them the
    fraud facts of this shape, if any (facts.facts_select; one row, on every row)."""
    statement = ledger.TERMS_AND_MONTH
    if shape is not None:
        read = facts.facts_select(shape).subquery("facts")
        statement = statement.add_columns(*read.c).join(read, true())
    return Prepared(statement)


async def judge_and_plan(
    session: AsyncSession,
    program: Program,
    conversion: Conversion,
    partner: Partner,
    click: ClickId | None,
    body: ConversionCreate,
    recurring_since: datetime | None,
) -> tuple[list[fraud.Hit], ledger.Earning | None]:
    """The program's rules, as they stand now, over this conversion's facts, and what it
    earns (ledger.plan_earning): both from one statement."""
    rules = rules_in_force(program.fraud_rules)
    query = facts.facts_query(
        fraud.needs(rules),
        click_id=click.click_uuid if click is not None else None,
        clicked_at=click.clicked_at if click is not None else None,
        conversion_id=conversion.id,
        partner_id=partner.id,
        program_id=program.id,
        occurred_at=conversion.occurred_at,
        counted=fraud.counted(rules),
    )
    month, params = ledger.terms_and_month_params(conversion, program, partner)
    if query is not None:
        # Both name the partner and the program: the same values.
        params.update(query.params)
    rows = await facts_terms_and_month(None if query is None else query.shape).fetch(
        session, params
    )
    stored = facts.facts_of(query, rows[0][ledger.TERMS_WIDTH :])
    hits = fraud.evaluate(
        rules,
        fraud.Facts(
            occurred_at=conversion.occurred_at,
            clicked_at=click.clicked_at if click is not None else None,
            customer_email=body.customer_email,
            partner_email=partner.email,
            paid_markers=stored.paid_markers,
            referrer_host=stored.referrer_host,
            visitor_clicks_before=stored.visitor_clicks_before,
            partner_conversions_before=stored.partner_conversions_before,
        ),
    )
    return hits, ledger.earning_of(rows, month, conversion, program, partner, recurring_since)
