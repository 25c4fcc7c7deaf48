"""Types a BI tool cannot misread: SQLite's read models store each instant as ISO 8601 text
of its UTC time with the offset, one width for all, so that the text sorts and compares as
the instants do and reads back aware; every money column says it is fen; every business
date is named `business_day` or `<what>_business_day`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Integer,
    create_engine,
    inspect,
)
from sqlalchemy.dialects import sqlite

from projections.fold import DISCREPANCY_COUNTERS, calendar_row
from projections.schema import READ_MODELS, SCHEMA_VERSION, UTCDateTime, metadata, utc_text

DIALECT = sqlite.dialect()
OURS = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
#: What a tool reflecting the table reads the column as (SQLite's DATETIME).
REFLECTED = DateTime().dialect_impl(DIALECT).result_processor(DIALECT, None)
zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-9)),
                         timezone(timedelta(hours=5, minutes=45))])
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                        timezones=zones)


def test_the_schema_version_is_9() -> None:
    # 9: `_fen` money, `business_day` dates, SQLite times with their offset, the calendar.
    assert SCHEMA_VERSION == 9


@given(instants)
def test_an_instant_is_stored_as_iso_8601_text_of_its_utc_time_with_the_offset(
        at: datetime) -> None:
    assert OURS is not None and REFLECTED is not None
    stored = OURS(at)
    assert stored == utc_text(at) == at.astimezone(UTC).isoformat(timespec="microseconds")
    assert stored.endswith("+00:00") and stored[10] == "T"
    assert len(stored) == 32
    assert OURS(None) is None
    back = REFLECTED(stored)  # as pandas' read_sql_table gets it: aware, the same instant
    assert back.utcoffset() == timedelta(0) and back == at


@given(st.lists(instants, min_size=2, max_size=20))
def test_the_stored_text_sorts_and_compares_as_the_instants_do(times: list[datetime]) -> None:
    assert OURS is not None
    assert sorted(times, key=OURS) == sorted(times)
    for a, b in pairwise(times):
        assert (OURS(a) < OURS(b)) == (a < b) and (OURS(a) == OURS(b)) == (a == b)


def test_sqlite_declares_the_times_as_timestamps_a_reflecting_tool_reads_aware() -> None:
    """SQLite's read models declare their times `TIMESTAMP(6)`, which SQLAlchemy's
    reflection (pandas' `read_sql_table`) takes for a timestamp with a time zone, read
    through `datetime.fromisoformat`, which keeps the offset (docs/reporting.md, "Types for
    BI tools")."""
    engine = create_engine("sqlite://")
    try:
        metadata.create_all(engine)
        found = inspect(engine)
        for table in metadata.tables.values():
            for column in table.columns:
                if isinstance(column.type, UTCDateTime):
                    assert column.type.compile(dialect=DIALECT) == "TIMESTAMP(6)"
                    (reflected,) = [c["type"] for c in found.get_columns(table.name)
                                    if c["name"] == column.name]
                    assert isinstance(reflected, TIMESTAMP) and reflected.timezone
    finally:
        engine.dispose()


#: Integer columns that are not money: counts, versions, positions, seconds, case numbers.
NOT_MONEY = {"latest_case", "violations", "lapses", "last_position", "version", "case_no",
             "position", "evidence_count", "deadline_changes", "notification_id",
             "schema_version", "year", "quarter", "month", "day_of_month", "iso_year",
             "iso_week", "iso_weekday"}
#: Counts whose names have a word of money in them.
COUNTS = {"compensations_paid", *DISCREPANCY_COUNTERS.values()}


def test_every_money_column_is_named_fen() -> None:
    """An integer column is money (fen, `…_fen`), seconds (`…_seconds`), or one of the
    counts and numbers above; no column says amount, postage, total, paid or debt without
    saying fen."""
    money = {"goods_amount_fen", "postage_fen", "refunded_total_fen", "amount_fen",
             "paid_to_user_fen", "merchant_debt_fen", "compensation_fen"}
    found = set()
    for name in [*READ_MODELS, "projection_tracking", "projection_meta"]:
        for column in metadata.tables[name].columns:
            words = set(column.name.split("_"))
            if words & {"amount", "postage", "total", "paid", "debt", "fen", "yuan"} and (
                    column.name not in COUNTS):
                assert column.name.endswith("_fen"), f"{name}.{column.name}"
            if column.name.endswith("_fen"):
                found.add(column.name)
                assert isinstance(column.type, BigInteger), f"{name}.{column.name}"
            elif isinstance(column.type, Integer) and name != "merchant_compliance":
                assert column.name.endswith("_seconds") or column.name in NOT_MONEY, (
                    f"{name}.{column.name}: money? name it …_fen")
    assert found == money


def test_every_business_date_is_named_business_day() -> None:
    """`business_day` is a row's own date (the day it counts on, or of its one instant);
    `<what>_business_day` is the date of `<what>_at` in the same row (or, in the calendar,
    the date its week or month starts on)."""
    for name in READ_MODELS:
        table = metadata.tables[name]
        for column in table.columns:
            if isinstance(column.type, Date):
                assert column.name == "business_day" or column.name.endswith(
                    "_business_day"), f"{name}.{column.name}"
                what = column.name.removesuffix("business_day").removesuffix("_")
                if what and name != "business_calendar":
                    assert f"{what}_at" in table.c, f"{name}.{column.name}"
            assert column.name != "day" and not (
                column.name.endswith("_day") and not column.name.endswith("business_day")
                and column.name != "day_of_month"), f"{name}.{column.name}"


def test_booleans_are_declared_boolean() -> None:
    """0/1 on SQLite, boolean on PostgreSQL: declared BOOLEAN on both, which is how
    pandas' read_sql_table knows to give bool (or, where null is allowed, True, False or
    None)."""
    flags = {f"{t.name}.{c.name}" for t in metadata.tables.values() for c in t.columns
             if isinstance(c.type, Boolean)}
    assert flags == {"order_status.history_broken", "return_cases.before_shipment",
                     "return_cases.converted_to_refund", "return_cases.voucher_late",
                     "disputes.lost", "violations.penalty", "business_calendar.is_weekend"}
    nullable = {f for f in flags if metadata.tables[f.split(".")[0]].c[f.split(".")[1]]
                .nullable}
    assert nullable == {"return_cases.voucher_late", "disputes.lost"}


def test_a_calendar_row_names_its_week_and_month() -> None:
    # 1 January 2027 is a Friday of ISO week 53 of 2026.
    assert calendar_row(date(2027, 1, 1)) == {
        "business_day": date(2027, 1, 1), "year": 2027, "quarter": 1, "month": 1,
        "year_month": "2027-01", "month_start_business_day": date(2027, 1, 1),
        "day_of_month": 1, "iso_year": 2026, "iso_week": 53, "iso_year_week": "2026-W53",
        "week_start_business_day": date(2026, 12, 28), "iso_weekday": 5,
        "weekday_name": "Friday", "is_weekend": False}
    sunday = calendar_row(date(2026, 3, 8))
    assert (sunday["iso_weekday"], sunday["weekday_name"], sunday["is_weekend"],
            sunday["week_start_business_day"], sunday["quarter"]) == (
        7, "Sunday", True, date(2026, 3, 2), 1)
