"""Read models: exactly the expected rows per scenario, exactly once, rebuildable, verified."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from threading import Event
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import Tracking
from psycopg import sql
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from aftersales import Ledger
from aftersales.application.commands import parse_command
from aftersales.errors import ViewsMismatch
from projections import rebuild as rebuild_module
from projections.database import ReadModels, StaleTracking, views_url
from projections.queries import business_days
from projections.runner import Runner, _differences, _keyed, verify
from projections.schema import (
    READ_MODELS,
    SCHEMA_VERSION,
    lapses,
    merchant_compliance,
    order_status,
    pending_deadlines,
    projection_meta,
    return_cases,
    violations,
)
from tests.conftest import PG_URL, _conninfo, require_postgres
from tests.scenario import DAY, GOODS, HOUR, POSTAGE, SECOND, T0, Scenario


@pytest.fixture
def views(durable_ledger: Ledger) -> Iterator[ReadModels]:
    models = ReadModels(views_url(durable_ledger.url))
    yield models
    models.close()


def project(ledger: Ledger, views: ReadModels) -> int:
    return Runner(ledger, views).catch_up()


def rows(views: ReadModels, table: Any, **where: Any) -> list[dict[str, Any]]:
    q = select(table)
    for column, value in where.items():
        q = q.where(table.c[column] == value)
    with views.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def one(views: ReadModels, table: Any, **where: Any) -> dict[str, Any]:
    found = rows(views, table, **where)
    assert len(found) == 1, found
    return found[0]


def test_order_status_row_for_an_online_order_awaiting_payment(
    durable_ledger: Ledger, views: ReadModels
) -> None:
    Scenario(durable_ledger, "online")
    assert project(durable_ledger, views) == 1
    row = one(views, order_status, order_id="D1")
    assert {k: row[k] for k in ("payment", "merchant_id", "user_id", "order_status",
                                "awaiting", "next_deadline_rule", "refunded_total_fen",
                                "violations", "lapses", "latest_case", "version",
                                "last_position")} == {
        "payment": "online", "merchant_id": "M1", "user_id": "U1",
        "order_status": "awaiting_payment", "awaiting": "user", "next_deadline_rule": "C-ON-4",
        "refunded_total_fen": 0, "violations": 0, "lapses": 0, "latest_case": None, "version": 1,
        "last_position": 1}
    assert row["next_deadline"] == T0 + 24 * HOUR  # the same instant, returned in UTC
    assert row["placed_business_day"] == date(2026, 3, 1)  # Asia/Shanghai business day
    assert one(views, pending_deadlines, order_id="D1")["rule"] == "C-ON-4"


def test_online_return_refunded_rows(durable_ledger: Ledger, views: ReadModels) -> None:
    s = Scenario(durable_ledger, "online").to_received()
    project(durable_ledger, views)
    case = one(views, return_cases, order_id="D1", case_no=1)
    assert (case["status"], case["decision"], case["decided_by"], case["refunded_by"],
            case["paid_to_user_fen"], case["received_by"]) == (
        "refunded", "approved", "merchant", "platform", GOODS, "merchant")
    assert case["response_seconds"] == 3600  # requested, then approved an hour later
    assert case["ended_at"] == s.now
    order = one(views, order_status, order_id="D1")
    assert (order["case_status"], order["refunded_total_fen"], order["awaiting"],
            order["next_deadline"]) == ("refunded", GOODS, None, None)
    assert rows(views, pending_deadlines) == []
    assert rows(views, violations) == [] and rows(views, lapses) == []


def test_cod_violations_compensation_and_late_voucher_counted_once(
    durable_ledger: Ledger, views: ReadModels
) -> None:
    s = Scenario(durable_ledger, "cod").to_requested()
    requested = s.now
    s.tick(48 * HOUR + SECOND)  # RETURN_RESPONSE_48H
    s.do("submit_tracking", carrier="YTO", tracking_no="1")
    tracked = s.now
    s.tick(7 * DAY + 48 * HOUR + 2 * SECOND)  # RECEIPT_CONFIRM_7D, COD_REFUND_VOUCHER_48H
    project(durable_ledger, views)  # interrupted here, resumed below
    s.do("upload_refund_voucher", voucher_ref="V-late", amount=GOODS)
    project(durable_ledger, views)
    found = sorted((v["rule"], v["consequence"], v["penalty"], v["case_no"])
                   for v in rows(views, violations))
    assert found == [("COD_REFUND_VOUCHER_48H", "advance_compensated", True, 1),
                     ("RECEIPT_CONFIRM_7D", "auto_confirmed", False, 1),
                     ("RETURN_RESPONSE_48H", "auto_approved", False, 1)]
    deadlines = {v["rule"]: v["deadline"] for v in rows(views, violations)}
    assert deadlines["RETURN_RESPONSE_48H"] == requested + 48 * HOUR
    assert deadlines["COD_REFUND_VOUCHER_48H"] == tracked + 7 * DAY + 48 * HOUR
    case = one(views, return_cases, order_id="D1", case_no=1)
    assert (case["status"], case["paid_to_user_fen"], case["merchant_debt_fen"],
            case["voucher_late"], case["decided_by"], case["received_by"]) == (
        "compensated", GOODS, 0, True, "system", "system")
    assert one(views, order_status, order_id="D1")["refunded_total_fen"] == GOODS  # once
    days = rows(views, merchant_compliance, merchant_id="M1")
    totals = {k: sum(d[k] for d in days) for k in (
        "cases_opened", "answered_on_time", "auto_approved", "receipts_auto_confirmed",
        "vouchers_late", "compensations_paid", "compensation_fen")}
    assert totals == {"cases_opened": 1, "answered_on_time": 0, "auto_approved": 1,
                      "receipts_auto_confirmed": 1, "vouchers_late": 1,
                      "compensations_paid": 1, "compensation_fen": GOODS}
    assert [d["median_response_seconds"] for d in days if d["auto_approved"]] == [
        48 * 3600.0]


def test_lapses_and_partial_returns(durable_ledger: Ledger, views: ReadModels) -> None:
    Scenario(durable_ledger, "online", order_id="UNPAID")
    s = Scenario(durable_ledger, "online", order_id="P1").to_delivered()
    s.do("request_return", amount=3000, reason="one broken")
    s.do("approve_return")
    s.tick(8 * DAY)  # the user never sends tracking: RETURN_TRACKING_7D; UNPAID_24H too
    s.do("request_return", amount=2000, reason="second try")
    s.do("approve_return")
    s.do("submit_tracking", carrier="YTO", tracking_no="2")
    s.do("confirm_receipt")
    project(durable_ledger, views)
    assert sorted((x["order_id"], x["rule"], x["case_no"]) for x in rows(views, lapses)) == [
        ("P1", "RETURN_TRACKING_7D", 1), ("UNPAID", "UNPAID_24H", None)]
    cases = sorted((c["case_no"], c["status"], c["amount_fen"], c["paid_to_user_fen"])
                   for c in rows(views, return_cases, order_id="P1"))
    assert cases == [(1, "closed", 3000, 0), (2, "refunded", 2000, 2000)]
    order = one(views, order_status, order_id="P1")
    assert (order["latest_case"], order["case_status"], order["refunded_total_fen"],
            order["lapses"]) == (2, "refunded", 2000, 1)
    unpaid = one(views, order_status, order_id="UNPAID")
    assert (unpaid["order_status"], unpaid["cancelled_by"]) == ("cancelled", "system")


def test_cancellation_refund_in_order_status(durable_ledger: Ledger, views: ReadModels) -> None:
    s = Scenario(durable_ledger, "online")
    s.do("pay")
    s.do("cancel", by="platform")
    project(durable_ledger, views)
    row = one(views, order_status, order_id="D1")
    assert (row["order_status"], row["cancelled_by"], row["refunded_total_fen"]) == (
        "cancelled", "platform", GOODS + POSTAGE)


def test_restart_does_not_double_count(durable_ledger: Ledger, views: ReadModels) -> None:
    Scenario(durable_ledger, "cod").to_received()
    durable_ledger.tick(T0 + 60 * DAY)
    first = project(durable_ledger, views)
    again = ReadModels(views.url)
    assert Runner(durable_ledger, again).catch_up() == 0
    again.close()
    assert first == len(list(durable_ledger.all_events()))
    assert len(rows(views, violations)) == 1


class Crash(BaseException):
    """The process stops in the middle of a batch (not an error a batch handles)."""


def test_a_batch_that_fails_midway_writes_nothing(durable_ledger: Ledger,
                                                  views: ReadModels) -> None:
    Scenario(durable_ledger, "online").to_delivered()
    runner = Runner(durable_ledger, views, batch=2)
    runner.catch_up()
    Scenario(durable_ledger, "online", order_id="X").do("pay")
    page = notifications(durable_ledger, runner.position)
    before = rows(views, order_status)
    seen: list[int] = []

    def crash_on_second(n: Any) -> Any:
        seen.append(n.id)
        if len(seen) == 2:
            raise Crash
        return runner.decode(n)

    with pytest.raises(Crash):
        runner.projection.process_batch(page, durable_ledger.name, runner.position,
                                        crash_on_second)
    assert rows(views, order_status) == before
    assert runner.position == page[0].id - 1


def notifications(ledger: Ledger, after: int | None = None) -> list[Any]:
    return list(ledger.recorder.select_notifications(after, 1000, inclusive_of_start=False)
                if after else ledger.recorder.select_notifications(None, 1000))


def test_two_runners_racing_project_each_event_once(durable_ledger: Ledger,
                                                    views: ReadModels) -> None:
    Scenario(durable_ledger, "cod").to_received()
    events = notifications(durable_ledger)
    runner = Runner(durable_ledger, views)
    name, decode = durable_ledger.name, runner.decode
    runner.projection.process_batch(events[:3], name, None, decode)
    with pytest.raises(StaleTracking):  # a second runner that read the old position
        runner.projection.process_batch(events[:3], name, None, decode)
    with pytest.raises(StaleTracking):
        runner.projection.process_batch(events[3:], name, 1, decode)
    assert runner.catch_up() == len(events) - 3
    assert verify(durable_ledger, views) == []


def test_verify_detects_a_corrupted_row(durable_ledger: Ledger, views: ReadModels) -> None:
    Scenario(durable_ledger, "online").to_received()
    project(durable_ledger, views)
    assert verify(durable_ledger, views) == []
    with views.engine.begin() as conn:
        conn.execute(update(order_status).where(order_status.c.order_id == "D1")
                     .values(refunded_total_fen=1))
    differences = verify(durable_ledger, views)
    assert differences == [
        f"order_status ('D1',): refunded_total_fen is 1, rebuild says {GOODS}"]


def test_verify_reports_missing_and_extra_rows(durable_ledger: Ledger,
                                               views: ReadModels) -> None:
    Scenario(durable_ledger, "online").to_requested()
    durable_ledger.tick(T0 + 30 * DAY)
    project(durable_ledger, views)
    with views.engine.begin() as conn:
        conn.execute(violations.delete())
        conn.execute(pending_deadlines.insert().values(
            order_id="GHOST", merchant_id="M", case_no=None, rule="R-1", deadline=T0,
            awaiting="merchant"))
    differences = verify(durable_ledger, views)
    assert any(d.startswith("violations (") and "missing" in d for d in differences)
    assert "pending_deadlines ('GHOST',): extra row (rebuild has none)" in differences


def stored(views: ReadModels) -> dict[str, list[tuple[Any, ...]]]:
    """Every read-model row as the database holds it (text, numbers), not as read back
    through the column types: what psql or a BI tool sees."""
    with views.engine.connect() as conn:
        return {name: sorted(map(tuple, conn.exec_driver_sql(f"SELECT * FROM {name}")))
                for name in [*READ_MODELS, "projection_tracking", "projection_meta"]}


@pytest.mark.parametrize("page,workers", [(3, 1), (10_000, 1), (3, 3)])
def test_rebuild_stores_exactly_what_the_runner_stored(
    durable_ledger: Ledger, views: ReadModels, page: int, workers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for n, payment in enumerate(["online", "cod"] * 3):
        Scenario(durable_ledger, payment, order_id=f"O{n}").to_in_transit()
    long = Scenario(durable_ledger, "cod", order_id="LONG").to_in_transit()  # > 3 events
    long.do("confirm_receipt")
    durable_ledger.tick(T0 + 30 * DAY)
    project(durable_ledger, views)
    before = stored(views)
    monkeypatch.setattr(rebuild_module, "PAGE", page)  # orders across pages, and bigger
    replayed = Runner(durable_ledger, views, batch=3).rebuild(workers=workers)
    assert replayed == durable_ledger.recorder.max_notification_id()
    after = stored(views)
    assert before == after and before["violations"] and before["merchant_compliance"]


def test_a_changed_schema_version_rebuilds_instead_of_mixing(
    durable_ledger: Ledger, views: ReadModels
) -> None:
    Scenario(durable_ledger, "online")
    project(durable_ledger, views)
    with views.engine.begin() as conn:
        conn.execute(update(projection_meta).values(schema_version=0))
    fresh = ReadModels(views.url)
    runner = Runner(durable_ledger, fresh)  # rebuilt into shadow tables, swapped in
    assert fresh.rebuilt_for_version
    assert runner.position == 1
    assert runner.catch_up() == 0
    assert verify(durable_ledger, fresh) == []
    fresh.close()


def test_a_redelivered_event_is_not_counted_twice(durable_ledger: Ledger,
                                                  views: ReadModels) -> None:
    Scenario(durable_ledger, "cod").to_approved()
    runner = Runner(durable_ledger, views)
    runner.catch_up()
    approved = next((e, Tracking(durable_ledger.name, i + 1))
                    for i, e in enumerate(durable_ledger.all_events())
                    if type(e).__name__ == "MerchantApproved")
    notification = next(n for n in notifications(durable_ledger)
                        if n.id == approved[1].notification_id)
    with pytest.raises(StaleTracking):  # redelivered after it was projected
        runner.projection.process_batch([notification], durable_ledger.name,
                                        runner.position, runner.decode)
    with pytest.raises(StaleTracking):  # by a runner that read an earlier position
        runner.projection.process_batch([notification], durable_ledger.name,
                                        notification.id - 1, runner.decode)
    with pytest.raises(NotImplementedError, match="use process_batch"):
        runner.projection.process_event(*approved)  # the library's one-event interface
    assert runner.position == len(list(durable_ledger.all_events()))
    assert sum(r["answered_on_time"] for r in rows(views, merchant_compliance)) == 1


def test_another_time_zone_is_refused_not_mixed(durable_ledger: Ledger,
                                                views: ReadModels) -> None:
    s = Scenario(durable_ledger, "online")
    project(durable_ledger, views)
    utc = ReadModels(views.url, tz="UTC")
    with pytest.raises(ViewsMismatch, match="AFTERSALES_TZ=Asia/Shanghai"):
        Runner(durable_ledger, utc)
    # An explicit rebuild in UTC replaces them; a runner still counting in Shanghai's days
    # then stops at its next batch instead of mixing.
    Runner(durable_ledger, utc, prepare=False).rebuild()
    s.do("pay")
    with pytest.raises(ViewsMismatch):
        Runner(durable_ledger, views, prepare=False).catch_up()
    utc.close()


def test_read_models_of_a_newer_version_are_refused(durable_ledger: Ledger,
                                                    views: ReadModels) -> None:
    Scenario(durable_ledger, "online")
    project(durable_ledger, views)
    with views.engine.begin() as conn:
        conn.execute(update(projection_meta).values(schema_version=SCHEMA_VERSION + 1))
    newer = ReadModels(views.url)
    with pytest.raises(ViewsMismatch, match="newer version"):
        Runner(durable_ledger, newer)
    newer.close()


def test_catch_up_stops_between_batches_and_up_to_a_position(durable_ledger: Ledger,
                                                            views: ReadModels) -> None:
    Scenario(durable_ledger, "cod").to_received()
    total = len(list(durable_ledger.all_events()))
    runner = Runner(durable_ledger, views, batch=2)
    stop = Event()
    assert runner.catch_up(lambda n: stop.set(), stop) == 2
    assert runner.catch_up(upto=5) == 3 and runner.position == 5
    assert runner.catch_up() == total - 5


def test_report_counts_whole_business_days(views: ReadModels) -> None:
    assert business_days(views.tz, T0, T0 + DAY) == (date(2026, 3, 1), date(2026, 3, 3))
    midnight = T0.replace(hour=0)
    assert business_days(views.tz, midnight, midnight + DAY) == (date(2026, 3, 1),
                                                              date(2026, 3, 2))
    assert business_days(views.tz, None, None) == (None, None)


def assert_rebuild_stores_what_was_projected(ledger: Ledger, views: ReadModels, now: datetime,
                                             disputes: int) -> None:
    """Sweep to `now`, project, and check (I6) that a rebuild stores what the runner
    stored, `disputes` rows of disputes among them."""
    ledger.tick(now)
    project(ledger, views)
    before = stored(views)
    assert len(before["disputes"]) == disputes
    assert verify(ledger, views) == []
    Runner(ledger, views, batch=3).rebuild(workers=1)
    assert stored(views) == before


def _database_sorting_text_by_the_english_rules() -> str:
    """A PostgreSQL database (beside the tests' own) whose text sorts as English readers
    expect ('A_1' < 'A-2' < 'a1' < 'A1'), not by code point as Python compares it."""
    require_postgres()
    name = f"{make_url(PG_URL).database}_icu_en"
    with psycopg.connect(_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} LOCALE_PROVIDER icu ICU_LOCALE 'en' "
                             "TEMPLATE template0").format(sql.Identifier(name)))
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def test_verify_streams_read_models_in_the_order_python_compares_keys(
        tmp_path: Path) -> None:
    """verify reads the live and rebuilt tables side by side in key order; read models in
    a database whose text sorts by a locale's rules are still read in code-point order,
    so every row meets its counterpart and a changed one is named."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ids = ["A_1", "A-2", "a1", "A1", "B", "A.1", "z", "Z-"]
    ledger.execute_batch([parse_command(json.dumps(
        {"command": "place_order", "order_id": oid, "at": "2026-03-01T10:00:00+08:00",
         "payment": "online", "merchant_id": "M", "user_id": "U", "goods_amount": 100}))
        for oid in ids])
    views = ReadModels(_database_sorting_text_by_the_english_rules())
    try:
        project(ledger, views)
        with views.engine.connect() as conn:
            keys = [key for key, _ in _keyed(conn, "order_status", ("order_id",))]
        assert keys == sorted((oid,) for oid in ids)
        assert verify(ledger, views) == []
        with views.engine.begin() as conn:
            conn.execute(update(order_status).where(order_status.c.order_id == "a1")
                         .values(goods_amount_fen=7))
        assert verify(ledger, views) == [
            "order_status ('a1',): goods_amount_fen is 7, rebuild says 100"]
    finally:
        views.close()
        ledger.close()


def test_differences_refuse_a_stream_out_of_key_order() -> None:
    """A stream not in key order concludes nothing (verify then compares whole tables)."""
    row = {"x": 1}
    assert _differences("t", iter([(("b",), row), (("a",), row)]),
                        iter([(("a",), row), (("b",), row)])) is None
    assert _differences("t", iter([(("a",), row), (("b",), {"x": 2})]),
                        iter([(("b",), row), (("c",), row)])) == [
        (("a",), "t ('a',): extra row (rebuild has none)"),
        (("b",), "t ('b',): x is 2, rebuild says 1"),
        (("c",), "t ('c',): missing (rebuild has it)")]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 20])
@pytest.mark.parametrize("walking", [False, True])
def test_rebuild_ranges_cover_every_order_once(count: int, walking: bool) -> None:
    """The processes' ranges of order ids run from 0 to the end without gap or overlap;
    the process that also walks the log takes a smaller one (never less than none)."""
    edges = rebuild_module._edges(count, walking)
    assert len(edges) == count + 1
    assert edges[0] == 0 and edges[-1] == rebuild_module.SPACE
    assert edges == sorted(edges)
    if count > 1:
        share = edges[1] / rebuild_module.SPACE
        assert share == pytest.approx(1 / count) if not walking else 0 <= share < 1 / count
