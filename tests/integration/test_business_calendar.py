"""`business_calendar`: every business day from the first to the last the ledger's events fall
on, none skipped (the quiet days between them too), kept by the live projection batch by
batch and by a rebuild page by page (several workers at once), the same rows either way,
compared by `verify`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from aftersales import Ledger
from projections import rebuild as rebuild_module
from projections.database import ReadModels, views_url
from projections.fold import calendar_row
from projections.runner import Runner, verify
from projections.schema import business_calendar
from tests.integration.test_projections import stored
from tests.scenario import CST, DAY, HOUR


@pytest.fixture
def views(durable_ledger: Ledger) -> Iterator[ReadModels]:
    models = ReadModels(views_url(durable_ledger.url))
    yield models
    models.close()


def days(views: ReadModels) -> list[date]:
    with views.engine.connect() as conn:
        return list(conn.execute(select(business_calendar.c.business_day)
                                 .order_by(business_calendar.c.business_day)).scalars())


def span(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def place(ledger: Ledger, order_id: str, at: datetime) -> None:
    ledger.place_order(order_id=order_id, at=at, payment="cod", merchant_id="M1",
                       user_id="U1", goods_amount=100, postage=0)


def test_the_calendar_covers_every_day_between_the_first_and_the_last_event(
        durable_ledger: Ledger, views: ReadModels) -> None:
    runner = Runner(durable_ledger, views, batch=1)  # a batch per event: spans apart
    assert days(views) == []
    # 23:30 in Shanghai is 15:30 UTC: the business day is Shanghai's
    place(durable_ledger, "LATE", datetime(2026, 3, 10, 23, 30, tzinfo=CST))
    runner.catch_up()
    assert days(views) == [date(2026, 3, 10)]
    place(durable_ledger, "AFTER", datetime(2026, 3, 20, 9, tzinfo=CST))
    place(durable_ledger, "BEFORE", datetime(2026, 2, 27, 9, tzinfo=CST))  # recorded later
    runner.catch_up()
    assert days(views) == span(date(2026, 2, 27), date(2026, 3, 20))
    with views.engine.connect() as conn:
        row = conn.execute(select(business_calendar).where(
            business_calendar.c.business_day == date(2026, 3, 1))).mappings().one()
    assert (row["weekday_name"], row["iso_year_week"], row["year_month"],
            row["week_start_business_day"], row["is_weekend"]) == (
        "Sunday", "2026-W09", "2026-03", date(2026, 2, 23), True)
    assert verify(durable_ledger, views) == []


@pytest.mark.parametrize("workers", [1, 3])
def test_a_rebuild_fills_the_days_between_its_pages(
        durable_ledger: Ledger, views: ReadModels, workers: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of orders far apart in time (and workers replaying them at once) each cover
    their own days; the rebuild's end covers the days between."""
    start = datetime(2026, 3, 1, 10, tzinfo=CST)
    for n in range(6):  # two events each, 9 days apart
        place(durable_ledger, f"O{n}", start + n * 9 * DAY)
        durable_ledger.confirm_order(order_id=f"O{n}", at=start + n * 9 * DAY + HOUR)
    Runner(durable_ledger, views).catch_up()
    live = stored(views)
    assert days(views) == span(date(2026, 3, 1), date(2026, 4, 15))
    monkeypatch.setattr(rebuild_module, "PAGE", 2)  # an order a page
    Runner(durable_ledger, views).rebuild(workers=workers)
    assert stored(views) == live
    assert days(views) == span(days(views)[0], days(views)[-1])


def test_a_rebuild_s_end_covers_what_its_workers_left_apart(
        durable_ledger: Ledger, views: ReadModels, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers replaying at once may each see none of the others' days and cover only
    their own pages' (here every page does so): the rebuild's end fills the gaps."""
    start = datetime(2026, 3, 1, 10, tzinfo=CST)
    for n in range(4):
        place(durable_ledger, f"O{n}", start + n * 5 * DAY)
    Runner(durable_ledger, views).catch_up()
    live = stored(views)
    real = rebuild_module.cover_days
    spans: list[tuple[date, date]] = []

    def own_days_only(conn: Connection, first: date | None = None,
                      last: date | None = None) -> int:
        if first is None or last is None:
            return real(conn)
        spans.append((first, last))
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert(business_calendar).on_conflict_do_nothing(),
                     [calendar_row(d) for d in span(first, last)])
        return 0

    monkeypatch.setattr(rebuild_module, "cover_days", own_days_only)
    monkeypatch.setattr(rebuild_module, "PAGE", 1)  # an order a page
    Runner(durable_ledger, views).rebuild(workers=1)
    assert len(spans) == 4 and all(first == last for first, last in spans)
    assert stored(views) == live
    assert days(views) == span(date(2026, 3, 1), date(2026, 3, 16))


def test_verify_finds_a_missing_calendar_day(durable_ledger: Ledger,
                                             views: ReadModels) -> None:
    place(durable_ledger, "A", datetime(2026, 3, 1, 9, tzinfo=CST))
    place(durable_ledger, "B", datetime(2026, 3, 4, 9, tzinfo=CST))
    Runner(durable_ledger, views).catch_up()
    with views.engine.begin() as conn:
        conn.execute(business_calendar.delete().where(
            business_calendar.c.business_day == date(2026, 3, 2)))
        conn.execute(update(business_calendar).where(
            business_calendar.c.business_day == date(2026, 3, 3)).values(is_weekend=True))
    found = verify(durable_ledger, views)
    assert any(d.startswith("business_calendar (datetime.date(2026, 3, 2),): missing")
               for d in found), found
    assert any("is_weekend is True, rebuild says False" in d for d in found), found
