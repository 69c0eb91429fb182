"""The click writer's batch (clicks, visitor-days, hourly rollup) and monthly partitions."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.fraud import repository as facts
from service.fraud.rules import Counted
from service.kit.driver import Prepared
from service.redirect.batches import CLICK_COLUMNS, ROW_FIELDS, ROW_TYPE, write_batch
from service.redirect.cache import LinkCache, LinkEntry
from service.redirect.partitions import ensure_partitions
from service.tracking.partitions import months_to_cover, partition_name, spanned
from tests.factories import create_partner, create_program
from tests.links.factories import create_link
from tests.redirect.records import click_record


@pytest.fixture
async def conn(database_url):
    c = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    yield c
    await c.close()


def _record(link, at, visitor, *, bot=False):
    return click_record(link, at=at, visitor=visitor, bot=bot)


_STORED = ", ".join("a.user_agent" if c == "user_agent" else f"c.{c}" for c in CLICK_COLUMNS)


async def _stored(conn, click_id):
    """The stored click as a record (its user agent's text, not its id)."""
    row = await conn.fetchrow(
        f"SELECT {_STORED} FROM clicks c LEFT JOIN user_agents a"
        " ON a.id = c.user_agent_id WHERE c.id = $1",
        click_id,
    )
    return tuple(row)


async def test_batch_rollup_and_uniques(client, admin, conn):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    link = await create_link(client, admin, program, partner)
    h10 = datetime(2026, 3, 5, 10, 15, tzinfo=UTC)
    h11 = datetime(2026, 3, 5, 11, 40, tzinfo=UTC)
    next_day = datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    batch = [
        _record(link, h10, b"A"),
        _record(link, h10, b"A"),
        _record(link, h10, b"B"),
        _record(link, h10, b"bot", bot=True),
        _record(link, h11, b"A"),  # same visitor, same day: not unique again
        _record(link, h11, b"C"),
        _record(link, next_day, b"A"),  # a new day: unique again
    ]
    await write_batch(conn, batch[:3])
    await write_batch(conn, batch[3:])
    # Re-sent visitor on the same day in a later batch is not unique either.
    await write_batch(conn, [_record(link, h11, b"B")])
    rows = await conn.fetch(
        "SELECT hour, clicks, unique_clicks, bots FROM click_rollups_hourly "
        "WHERE link_id = $1 ORDER BY hour",
        uuid.UUID(link["id"]),
    )
    assert [(r["hour"], r["clicks"], r["unique_clicks"], r["bots"]) for r in rows] == [
        (datetime(2026, 3, 5, 10, tzinfo=UTC), 3, 2, 1),
        (datetime(2026, 3, 5, 11, tzinfo=UTC), 3, 1, 0),
        (datetime(2026, 3, 6, 9, tzinfo=UTC), 1, 1, 0),
    ]
    stored = await conn.fetchval(
        "SELECT count(*) FROM clicks WHERE link_id = $1", uuid.UUID(link["id"])
    )
    assert stored == 8


@pytest.mark.parametrize(("maybe_stored", "own_transaction"), [(False, True), (True, False)])
async def test_every_column_is_stored_as_given_whether_a_batch_has_values_in_it_or_not(
    client, admin, conn, maybe_stored, own_transaction
):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    link = await create_link(client, admin, program, partner)
    at = datetime(2026, 3, 5, 10, 15, tzinfo=UTC)
    full = list(_record(link, at, b"full"))
    full[5:11] = ["c1full", b"ip", b"full", "ua", "https://blog.example/", "DE"]
    full[11:16] = ["s1", "s2", "s3", "s4", "s5"]
    full[18] = ["gclid", "fbclid"]
    sparse = _record(link, at, b"sparse")
    # The optional columns have values in some clicks of the first batch and in none of the
    # second.
    batches = [[sparse, tuple(full), _record(link, at, b"other")], [_record(link, at, b"none")]]
    for batch in batches:
        assert await write_batch(
            conn, batch, maybe_stored=maybe_stored, own_transaction=own_transaction
        ) == len(batch)
    for batch in batches:
        for record in batch:
            assert await _stored(conn, record[0]) == record


# What a batch must carry through unchanged: any text PostgreSQL stores (every character
# but NUL), escapes and look-alikes of them among it, any bytes, any microsecond.
_TEXT = st.one_of(
    st.none(),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=30),
    st.sampled_from(
        ['"', "\\", "\\x41", "\\u0000", "\t\n\r\x1f\x7f", "\u2028", "\ufeff", "😀", ","]
    ),
)
_CLICKS = st.lists(
    st.tuples(
        # Hypothesis takes its bounds naive; every time it draws is in UTC.
        st.datetimes(
            min_value=datetime(2026, 3, 1),
            max_value=datetime(2026, 3, 31, 23, 59, 59, 999999),
            timezones=st.just(UTC),
        ),
        st.lists(_TEXT, min_size=7, max_size=7),  # user agent, referer, sub1..sub5
        st.sampled_from([None, "DE", "US"]),
        st.one_of(st.none(), st.binary(max_size=32)),
        st.binary(min_size=1, max_size=32),
        st.booleans(),
        st.one_of(
            st.none(),
            st.lists(
                st.sampled_from(["gclid", "fbclid", "msclkid"]), min_size=1, max_size=3, unique=True
            ),
        ),
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(clicks=_CLICKS, own_transaction=st.booleans())
async def test_any_click_values_are_stored_exactly(client, admin, conn, clicks, own_transaction):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    link = await create_link(client, admin, program, partner)
    batch = []
    for at, texts, country, ip_hash, visitor, bot, markers in clicks:
        record = list(_record(link, at, visitor, bot=bot))
        record[6], record[8], record[9], record[10] = ip_hash, texts[0], texts[1], country
        record[11:16] = texts[2:]
        record[18] = markers
        batch.append(tuple(record))
    assert await write_batch(conn, batch, own_transaction=own_transaction) == len(batch)
    for record in batch:
        assert await _stored(conn, record[0]) == record


async def test_the_batch_row_type_has_the_fields_the_batch_sends(conn):
    # Made by a migration: a column added to the batch without one fails here.
    rows = await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " JOIN pg_type t ON t.typrelid = a.attrelid WHERE t.typname = $1 AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum",
        ROW_TYPE,
    )
    fields = tuple((name, {"bigint": "int8"}.get(kind, kind)) for name, kind in rows)
    assert fields == ROW_FIELDS


async def test_a_new_batch_holding_a_stored_click_fails_whole_one_that_may_skips_it(
    client, admin, conn
):
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    link = await create_link(client, admin, program, partner)
    at = datetime(2026, 3, 5, 10, 15, tzinfo=UTC)
    stored = _record(link, at, b"A")
    assert await write_batch(conn, [stored], maybe_stored=False) == 1
    other = _record(link, at, b"B")
    # A first try holds no stored click; were one there, it fails, and stores nothing else.
    with pytest.raises(asyncpg.UniqueViolationError):
        await write_batch(conn, [other, stored], maybe_stored=False, own_transaction=True)
    # A retry skips it, and counts the others once.
    assert await write_batch(conn, [other, stored]) == 1
    rows = await conn.fetch(
        "SELECT clicks, unique_clicks FROM click_rollups_hourly WHERE link_id = $1",
        uuid.UUID(link["id"]),
    )
    assert [tuple(r) for r in rows] == [(2, 2)]


async def test_concurrent_batches_on_the_same_rows(client, admin, conn, database_url):
    """Two writers (two instances) upserting the same rollup rows neither deadlock nor lose counts."""
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    links = [await create_link(client, admin, program, partner) for _ in range(3)]
    at = datetime(2026, 4, 1, 8, tzinfo=UTC)
    other = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        batches = [
            [_record(link, at, bytes([i, j])) for link in links for j in range(5)] for i in range(6)
        ]
        for i in range(0, 6, 2):
            await asyncio.gather(
                write_batch(conn, batches[i]), write_batch(other, list(reversed(batches[i + 1])))
            )
    finally:
        await other.close()
    total = await conn.fetchval(
        "SELECT sum(clicks) FROM click_rollups_hourly WHERE link_id = ANY($1::uuid[])",
        [uuid.UUID(link["id"]) for link in links],
    )
    assert total == 90


async def test_partitions_ahead(app, conn):
    # The app created this month and the next ones at start.
    names = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'clicks'::regclass"
        )
    }
    for month in months_to_cover(datetime.now(UTC)):
        assert partition_name(month) in names
    assert "clicks_default" in names
    assert await ensure_partitions(conn) == []  # idempotent


async def test_stray_clicks_move_into_their_new_partition(conn):
    at = datetime(2031, 5, 17, 12, tzinfo=UTC)
    cid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO clicks (id, clicked_at, link_id, partner_id, program_id, click_token, "
        "is_bot, attributable) VALUES ($1, $2, $3, $3, $3, 'c1x', false, true)",
        cid,
        at,
        uuid.uuid4(),
    )
    where = await conn.fetchval("SELECT tableoid::regclass::text FROM clicks WHERE id = $1", cid)
    assert where == "clicks_default"
    created = await ensure_partitions(conn, now=at, ahead=0)
    assert created == ["clicks_2031_05"]
    where = await conn.fetchval("SELECT tableoid::regclass::text FROM clicks WHERE id = $1", cid)
    assert where == "clicks_2031_05"


def _entry(code: str) -> LinkEntry:
    return LinkEntry(
        {
            "id": uuid.uuid4(),
            "program_id": uuid.uuid4(),
            "partner_id": uuid.uuid4(),
            "destination_url": f"https://shop.example/{code}",
            "params": "[]",
            "status": "active",
            "expires_at": None,
            "click_param": "aff_click_id",
            "fallback_url": None,
            "allowed_domains": ["shop.example"],
            "partner_status": "active",
        }
    )


async def test_cache_is_bounded_and_skips_loads_raced_by_invalidation():
    loads: list[str] = []
    gate = asyncio.Event()

    async def loader(code: str) -> LinkEntry | None:
        loads.append(code)
        if code == "slow":
            await gate.wait()
        return _entry(code)

    cache = LinkCache(loader, max_size=2)
    cache.enabled = True
    for code in ("a", "b", "c"):
        await cache.get(code)
    assert len(cache) == 2 and "a" not in cache
    await cache.get("b")  # cached: no load
    assert loads == ["a", "b", "c"]

    # A load that overlaps an invalidation of its code is served but not kept.
    task = asyncio.create_task(cache.get("slow"))
    await asyncio.sleep(0)
    cache.on_notify("link:slow")
    gate.set()
    assert (await task) is not None
    assert "slow" not in cache

    # Concurrent misses share one load.
    loads.clear()
    results = await asyncio.gather(*(cache.get("d") for _ in range(5)))
    assert loads == ["d"] and len({id(r) for r in results}) == 1

    # Owner notifications drop every link of that partner; a disabled cache keeps nothing.
    entry = await cache.get("d")
    assert entry is not None
    cache.on_notify(f"partner:{entry.partner_id}")
    assert "d" not in cache
    cache.enabled = False
    await cache.get("e")
    assert "e" not in cache


async def test_a_click_in_a_months_first_hour_counts_the_visitors_clicks_of_the_month_before(
    app, client, admin, conn
):
    # The fraud facts bound their clicks by the months they span, written into the
    # statement; a click flood's hour may reach into the month before.
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    link = await create_link(client, admin, program, partner)
    ids = [uuid.uuid4() for _ in range(4)]
    times = [
        datetime(2027, 1, 31, 22, 0, tzinfo=UTC),  # more than an hour before: not counted
        datetime(2027, 1, 31, 23, 30, tzinfo=UTC),
        datetime(2027, 1, 31, 23, 59, tzinfo=UTC),
        datetime(2027, 2, 1, 0, 20, tzinfo=UTC),
    ]
    await write_batch(
        conn,
        [
            click_record(link, at=at, visitor=b"V", click_id=i)
            for i, at in zip(ids, times, strict=True)
        ],
    )
    assert spanned(times[3] - timedelta(hours=1), times[3]) == (
        datetime(2027, 1, 1, tzinfo=UTC),
        datetime(2027, 3, 1, tzinfo=UTC),
    )
    async with app.state.sessionmaker() as session:
        for clicked, before in ((3, 2), (2, 1)):
            query = facts.facts_query(
                frozenset({"click", "flood"}),
                click_id=ids[clicked],
                clicked_at=times[clicked],
                conversion_id=uuid.uuid4(),
                partner_id=uuid.UUID(partner["id"]),
                program_id=uuid.UUID(program["id"]),
                occurred_at=times[3] + timedelta(minutes=5),
                counted=Counted(visitor_clicks=21, partner_conversions=100),
            )
            assert query is not None
            row = await Prepared(facts.facts_select(query.shape)).fetchrow(session, query.params)
            assert row is not None
            stored = facts.facts_of(query, row)
            assert stored.paid_markers == frozenset()  # the click row was found
            assert stored.visitor_clicks_before == before, clicked


async def test_a_visitors_clicks_are_counted_no_further_than_the_flood_limit_needs(
    app, client, admin, conn
):
    # A bot's thousands of clicks in the hour are not all read again by each sale: the
    # count stops one past the rule's limit (rules.counted), which decides the same.
    program = await create_program(client, admin)
    partner = await create_partner(client, admin)
    link = await create_link(client, admin, program, partner)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = [uuid.uuid4() for _ in range(7)]
    times = [now - timedelta(minutes=50 - i) for i in range(7)]
    await write_batch(
        conn,
        [
            click_record(link, at=at, visitor=b"W", click_id=i)
            for i, at in zip(ids, times, strict=True)
        ],
    )
    read = {}
    async with app.state.sessionmaker() as session:
        for cap in (3, 21):
            query = facts.facts_query(
                frozenset({"click", "flood"}),
                click_id=ids[-1],
                clicked_at=times[-1],
                conversion_id=uuid.uuid4(),
                partner_id=uuid.UUID(partner["id"]),
                program_id=uuid.UUID(program["id"]),
                occurred_at=now,
                counted=Counted(visitor_clicks=cap, partner_conversions=100),
            )
            assert query is not None
            row = await Prepared(facts.facts_select(query.shape)).fetchrow(session, query.params)
            assert row is not None
            read[cap] = facts.facts_of(query, row).visitor_clicks_before
    assert read == {3: 3, 21: 6}


def test_the_months_a_span_of_clicks_reaches():
    december = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    at = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    assert spanned(at, at) == december
    assert spanned(at - timedelta(hours=1), at) == (datetime(2026, 11, 1, tzinfo=UTC), december[1])
    # Clicks are partitioned by UTC month, whatever zone a time is given in.
    local = datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert spanned(local, local) == (datetime(2026, 11, 1, tzinfo=UTC), december[0])
