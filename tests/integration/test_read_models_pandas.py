"""pandas reads every read model as a BI tool should, on both databases, with a plain
engine and no option: `pd.read_sql_table(name, engine)` gives timezone-aware (UTC)
datetimes for every time, int64 for every `_fen` column and every count, naive
datetime64 for the business dates, bool for the flags, and for the flags that may be null
(`disputes.lost`, `return_cases.voucher_late`) True, False or None (pandas' `boolean` with
`dtype_backend="numpy_nullable"`), the same on SQLite and PostgreSQL (docs/reporting.md,
"Types for BI tools")."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Boolean, Date, Engine, Float, Integer, create_engine, select
from sqlalchemy.engine import make_url

from aftersales import Ledger
from aftersales.storage.config import postgres_target
from projections.database import ReadModels, reporting_schema, views_url
from projections.runner import Runner
from projections.schema import READ_MODELS, UTCDateTime, metadata
from tests.faults import Store
from tests.integration.test_guides import demo_s_last_days, disputes
from tests.scenario import DAY, GOODS, HOUR, SECOND, T0, Scenario, refunded_returns


def every_kind_of_row(ledger: Ledger) -> None:
    """Rows in every read model: violations with and without a penalty, lapses, moved
    deadlines, a discrepancy, disputes lost, won, neither and still open (`lost` true,
    false and null), a late cod voucher (`voucher_late` true beside nulls), a pending
    deadline, and an order whose stored history was altered (`integrity_breaks`)."""
    Scenario(ledger, "online", order_id="UNPAID")  # never paid: UNPAID_24H, no case
    Scenario(ledger, "online", order_id="R1").to_refund_after_shipment()
    t = Scenario(ledger, "online", order_id="T1").to_in_transit()
    t.do("extend_deadline")
    t.do("set_deadline", until=t.now + 20 * DAY, reason="holiday")
    t.do("reconcile", source="douyin", ref="m1", fact="deadline", deadline=t.now + DAY)
    cod = Scenario(ledger, "cod", order_id="C1").to_requested()
    cod.tick(48 * HOUR + SECOND)
    cod.do("submit_tracking", carrier="YTO", tracking_no="1")
    cod.tick(7 * DAY + 48 * HOUR + 2 * SECOND)  # compensated in advance...
    cod.do("upload_refund_voucher", voucher_ref="V-late", amount=GOODS)  # ...then late
    disputes(ledger)
    opened = Scenario(ledger, "online", order_id="OPEN").to_appealed()
    opened.do("submit_evidence", evidence=["IMG-9"])  # awaiting the platform's ruling
    ledger.tick(T0 + 12 * DAY)
    demo_s_last_days(ledger)
    refunded_returns(ledger, "B1")
    store = Store(ledger.url)
    row = next(r for r in store.rows("B1") if b'"amount":5000' in bytes(r.state)
               and b"R-ON-4" in bytes(r.state))
    store.run("UPDATE {events} SET state = :s WHERE {id} = :n",
              s=bytes(row.state).replace(b'"amount":5000', b'"amount":50000', 1), n=row.n)
    store.close()


@pytest.fixture
def views(durable_ledger: Ledger) -> Iterator[ReadModels]:
    every_kind_of_row(durable_ledger)
    models = ReadModels(views_url(durable_ledger.url))
    Runner(durable_ledger, models).catch_up()
    yield models
    models.close()


def plain_engine(url: str) -> tuple[Engine, str | None]:
    """What an analyst connects pandas with: SQLAlchemy's own engine for the file or the
    server (not ours), and the PostgreSQL schema the tables are in."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return create_engine(u), None
    target = postgres_target(url)
    assert target is not None
    plain = u.set(drivername="postgresql+psycopg", query={})
    return create_engine(plain), reporting_schema(target)


def read_back(views: ReadModels, name: str) -> list[dict[str, Any]]:
    """The table's rows as our own engine reads them (aware datetimes, dates, bools), in
    the order of its key."""
    table = metadata.tables[name]
    with views.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(table).order_by(*(table.c[k] for k in READ_MODELS[name]))).mappings()]


def test_read_sql_table_gives_the_right_dtypes_for_every_read_model(
        views: ReadModels) -> None:
    engine, schema = plain_engine(views.url)
    try:
        for name, keys in READ_MODELS.items():
            table = metadata.tables[name]
            frame = (pd.read_sql_table(name, engine, schema=schema)
                     .sort_values(list(keys)).reset_index(drop=True))
            expected = read_back(views, name)
            assert expected, f"{name} has rows"
            assert list(frame.columns) == list(table.c.keys()) and len(frame) == len(expected)
            for column in table.columns:
                values = [r[column.name] for r in expected]
                check_column(f"{name}.{column.name}", column, frame[column.name], values)
    finally:
        engine.dispose()


def check_column(where: str, column: Any, series: pd.Series, values: list[Any]) -> None:
    dtype = series.dtype
    nulls = any(v is None for v in values)
    if isinstance(column.type, UTCDateTime):
        assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", (where, dtype)
        assert [None if pd.isna(v) else v.to_pydatetime() for v in series] == values, where
    elif isinstance(column.type, Date):
        assert pd.api.types.is_datetime64_dtype(dtype), (where, dtype)  # naive: a date
        assert [None if pd.isna(v) else v.date() for v in series] == values, where
    elif isinstance(column.type, Boolean):
        if nulls:  # True, False and None: objects
            assert column.nullable
            assert dtype == "object", (where, dtype)
            assert [None if v is None else v for v in series] == values, where
            assert {type(v) for v in series} <= {bool, type(None)}, where
        else:
            assert dtype == "bool", (where, dtype)
            assert series.tolist() == values, where
    elif isinstance(column.type, Integer):
        if column.name.endswith("_fen"):
            assert not column.nullable, where
        # a null among numbers makes the column float (NaN); only nulls, objects (None)
        kind = "object" if all(v is None for v in values) else "float64" if nulls else "int64"
        assert dtype == kind, (where, dtype)
        assert [None if pd.isna(v) else int(v) for v in series] == values, where
    elif isinstance(column.type, Float):
        assert dtype == "float64", (where, dtype)
    else:
        assert pd.api.types.is_string_dtype(dtype) or dtype == "object", (where, dtype)
        assert [None if pd.isna(v) else v for v in series] == values, where


def test_the_nullable_backend_gives_booleans_and_integers_with_na(views: ReadModels) -> None:
    engine, schema = plain_engine(views.url)
    try:
        found = pd.read_sql_table("disputes", engine, schema=schema,
                                  dtype_backend="numpy_nullable").sort_values(
            ["order_id", "case_no"])
        cases = pd.read_sql_table("return_cases", engine, schema=schema,
                                  dtype_backend="numpy_nullable")
        lapses = pd.read_sql_table("lapses", engine, schema=schema,
                                   dtype_backend="numpy_nullable")
    finally:
        engine.dispose()
    assert str(found["lost"].dtype) == "boolean"
    assert dict(zip(found["order_id"], found["lost"].tolist(), strict=True)) == {
        "A1": True, "A2": True, "A3": False, "A4": False, "OPEN": pd.NA}
    assert isinstance(found["opened_at"].dtype, pd.DatetimeTZDtype)
    assert str(cases["voucher_late"].dtype) == "boolean"
    assert str(cases["amount_fen"].dtype) == "Int64"
    assert str(lapses["case_no"].dtype) == "Int64" and lapses["case_no"].isna().any()


def test_a_query_with_parse_dates_gives_aware_times_even_without_sqlalchemy(
        views: ReadModels) -> None:
    """`pd.read_sql_query` does not know the columns' types: on SQLite the times are text
    until `parse_dates` names them, then aware (UTC) from their offset, through a bare
    sqlite3 connection too; the flags are 0/1 and a null one a float (`dtype` says
    what they are)."""
    engine, schema = plain_engine(views.url)
    statement = "SELECT order_id, opened_at, ruled_at, lost FROM disputes ORDER BY order_id"
    try:
        if engine.dialect.name == "sqlite":
            path = make_url(views.url).database
            assert path
            with sqlite3.connect(path) as conn:
                found = pd.read_sql_query(statement, conn,
                                          parse_dates=["opened_at", "ruled_at"],
                                          dtype={"lost": "boolean"})
        else:
            found = pd.read_sql_query(statement.replace("FROM ", f'FROM "{schema}".'), engine,
                                      dtype={"lost": "boolean"})
    finally:
        engine.dispose()
    expected = read_back(views, "disputes")
    for column in ("opened_at", "ruled_at"):
        assert isinstance(found[column].dtype, pd.DatetimeTZDtype), column
        assert str(found[column].dtype.tz) == "UTC"
        assert [None if pd.isna(v) else v.to_pydatetime() for v in found[column]] == [
            r[column] for r in expected]
    assert str(found["lost"].dtype) == "boolean"
    assert found["lost"].isna().tolist() == [r["lost"] is None for r in expected]
