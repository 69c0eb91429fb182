"""Click bounty benchmark: one program, many links with a day of hourly rollups each, then
the bounty job: the first run (pays every link's days: a UTC day of hours falls on two
Berlin days), an idle run (nothing changed) and a
run after late clicks on a tenth of the links (correcting entries).

    .venv/bin/python bench/bounties.py [--links 2000]

Uses an embedded PostgreSQL, or a fresh database on the server DATABASE_URL names (dropped
afterwards). Prints the times and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import bench_database  # noqa: E402

from service import migrate  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db import create_engine, create_sessionmaker, to_async_url  # noqa: E402
from service.kit.ids import new_id  # noqa: E402
from service.partnering.bounties import run_click_bounties  # noqa: E402

DAY = datetime(2026, 11, 20, tzinfo=UTC)
TERMS = '{"rules": [{"event": "click", "type": "flat", "amount": "0.02"}], "hold_days": 0}'


async def _seed(conn: asyncpg.Connection, links: int) -> None:
    program, partner, agreement = new_id(), new_id(), new_id()
    await conn.execute(
        "INSERT INTO programs (id, name, currency, time_zone, default_url, allowed_domains,"
        " click_param, attribution_window_days, attribution_order, hold_days, min_payout_minor)"
        " VALUES ($1, 'bench', 'USD', 'Europe/Berlin', 'https://shop.example/',"
        " '{shop.example}', 'aff_click_id', 30, '{promo_code,click,customer}', 0, 0)",
        program,
    )
    await conn.execute(
        "INSERT INTO partners (id, name, email, status, payout_details, metadata)"
        " VALUES ($1, 'bench', 'bench@partners.example', 'active', '{}', '{}')",
        partner,
    )
    await conn.execute(
        "INSERT INTO agreements (id, partner_id, program_id, starts_at) VALUES ($1, $2, $3, $4)",
        agreement,
        partner,
        program,
        DAY - timedelta(days=30),
    )
    await conn.execute(
        "INSERT INTO agreement_versions (id, agreement_id, version, effective_from, terms)"
        " VALUES ($1, $2, 1, $3, $4::jsonb)",
        new_id(),
        agreement,
        DAY - timedelta(days=30),
        TERMS,
    )
    ids = [new_id() for _ in range(links)]
    await conn.copy_records_to_table(
        "links",
        records=[
            (
                i,
                program,
                partner,
                f"b{secrets.token_hex(6)}",
                "https://shop.example/",
                "[]",
                "active",
            )
            for i in ids
        ],
        columns=["id", "program_id", "partner_id", "code", "destination_url", "params", "status"],
    )
    rows = [
        (i, DAY + timedelta(hours=h), partner, program, 5, 3, 1) for i in ids for h in range(24)
    ]
    await conn.copy_records_to_table(
        "click_rollups_hourly",
        records=rows,
        columns=["link_id", "hour", "partner_id", "program_id", "clicks", "unique_clicks", "bots"],
    )
    # Late clicks on a tenth of the links, applied before the third run.
    await conn.execute(
        "CREATE TABLE bench_late AS SELECT id AS link_id FROM links ORDER BY id LIMIT $1",
        links // 10,
    )


async def main(url: str, links: int) -> None:
    await asyncio.to_thread(migrate.upgrade, to_async_url(url))
    conn = await asyncpg.connect(url)
    await _seed(conn, links)
    engine = create_engine(to_async_url(url), Settings())
    maker = create_sessionmaker(engine)
    now = DAY + timedelta(days=2)
    t0 = time.perf_counter()
    first = await run_click_bounties(maker, now)
    t1 = time.perf_counter()
    idle = await run_click_bounties(maker, now)
    t2 = time.perf_counter()
    await conn.execute(
        "UPDATE click_rollups_hourly SET unique_clicks = unique_clicks + 1"
        " WHERE link_id IN (SELECT link_id FROM bench_late) AND hour = $1",
        DAY + timedelta(hours=12),
    )
    t3 = time.perf_counter()
    late = await run_click_bounties(maker, now)
    t4 = time.perf_counter()
    await conn.close()
    await engine.dispose()
    print(f"links: {links}, rollup rows: {links * 24}")
    print(
        f"first run: {first} entries (link-days) in {t1 - t0:.3f} s"
        f" ({(t1 - t0) / max(first, 1) * 1e3:.2f} ms an entry)"
    )
    print(
        f"idle run: {idle} entries in {t2 - t1:.3f} s (ratio to first {(t2 - t1) / (t1 - t0):.3f})"
    )
    print(
        f"late-click run: {late} entries in {t4 - t3:.3f} s (ratio to first {(t4 - t3) / (t1 - t0):.3f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--links", type=int, default=2000)
    with bench_database("bounties") as database:
        asyncio.run(main(database, parser.parse_args().links))
