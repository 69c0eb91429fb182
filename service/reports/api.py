from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from service.auth.deps import Reader
from service.db import Session
from service.kit import csvout
from service.kit.time import Instant
from service.openapi_responses import ERRORS
from service.reports import service
from service.reports.schemas import Format, GroupBy, Performance

router = APIRouter(prefix="/v1/reports", tags=["reports"])


DESCRIPTION = """\
The KPIs partnerships are judged by, per group and currency, with totals per currency.

**Scope.** Admin and finance see everything; a merchant key only its programs, a partner
key only itself (another program, partner or link is a 404, as if it did not exist).

**Range.** `from` (inclusive) and `to` (exclusive), RFC 3339 with an offset; by default
the 30 days up to now; at most 400 days. Clicks count by the start of their UTC hour
(the rollup's grain), conversions and their commission by the conversion's `occurred_at`.

**Days.** `group_by=day` buckets in `time_zone` (default: the program's zone when
`program_id` is given, else UTC). Zones whose offset is whole hours are exact; in others
(Asia/Kolkata, +05:30) the hourly clicks are bucketed by the hour's start, which the
answer says with `day_boundaries: "approximate to the hour"`. Conversions stay exact.

**Metrics.**
- `clicks`: non-bot clicks; `bots`: clicks of bots and link-preview fetchers.
- `unique_clicks`: first clicks of a visitor (address + user agent) on a link in a UTC
  day, summed; null when grouped by sub1 (the sub1 rollup does not keep visitors).
- `leads`, `sales`: attributed conversions that are not rejected (under review counts).
  Unattributed conversions belong to no partnership and are left out.
- `revenue`: those sales' amount in the program currency less their refunds (whenever the
  refund came), as a decimal string.
- `commission`: the ledger's net for those conversions, every kind (commission, reversal,
  click bounty...): a rejected conversion nets to zero. It is the attributed partner's
  side: a parent's overrides are left out, except with `group_by=partner`, where every
  entry is counted for the partner it is paid to, so the parent's row shows them (and the
  totals include them). Click bounties count by when they were written, under no link.
- `conversion_rate`: (leads + sales) / clicks, 4 decimals; `epc`: commission / clicks,
  rounded half-even to the currency's minor unit; both null when there are no clicks.

**Groups.** `link`: conversions won without a link (promo code, customer) are a row with a
null `link_id`. `sub1`: clicks from the (link, hour, sub1) rollup; a conversion's sub1 is
its click's (read by primary key from the raw click); no sub1 is a null `sub1`.

Rows never mix currencies: a group spanning programs in several currencies is one row
per currency. `format=csv` (or `Accept: text/csv`) answers the rows as CSV: the key's
columns, then currency, clicks, unique_clicks, bots, leads, sales, conversion_rate,
revenue, commission, epc; null is an empty cell.

**Freshness.** `clicks_lag_seconds` says how far the click counts may trail the redirects
answered: 0 with the default click writer in durable mode; in async mode the age of the
oldest answered click not committed yet; with the NATS click log, the age of the oldest
click in the stream that no loader has written yet. Null when that cannot be known (the
stream does not answer). Conversions never wait for it: attribution reads no click row.
"""


@router.get(
    "/performance",
    response_model=Performance,
    description=DESCRIPTION,
    responses={**ERRORS, 200: {"content": {"text/csv": {}}, "description": "JSON or CSV"}},
)
async def performance(
    request: Request,
    auth: Reader,
    session: Session,
    from_: Annotated[
        Instant | None, Query(alias="from", description="inclusive; default to - 30 days")
    ] = None,
    to: Annotated[Instant | None, Query(description="exclusive; default now")] = None,
    program_id: Annotated[uuid.UUID | None, Query()] = None,
    partner_id: Annotated[uuid.UUID | None, Query()] = None,
    link_id: Annotated[uuid.UUID | None, Query()] = None,
    group_by: Annotated[GroupBy, Query()] = "day",
    time_zone: Annotated[
        str | None, Query(max_length=64, description="IANA zone for day buckets")
    ] = None,
    format: Annotated[Format | None, Query(description="csv, or json (default)")] = None,
) -> Any:
    """Clicks, conversions, revenue and commission by day, partner, link, program or sub1."""
    params = service.Params(
        start=from_,
        end=to,
        program_id=program_id,
        partner_id=partner_id,
        link_id=link_id,
        group_by=group_by,
        time_zone=time_zone,
    )
    report = await service.performance(session, auth, params)
    runtime = getattr(request.app.state, "redirect", None)
    lag = None if runtime is None else runtime.writer.unloaded_seconds()
    report.clicks_lag_seconds = None if lag is None else round(lag, 3)
    if csvout.wanted(request, format):
        return csvout.response(service.to_csv(report), "performance.csv")
    return report
