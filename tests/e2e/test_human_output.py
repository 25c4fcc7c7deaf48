"""What a person reads: money in yuan with its currency (fen, in columns named `…_fen`, for
a program), business times in the business zone (offsets kept for a program), yes/no
flags, hours, a scorecard with totals and a caption, and summary lines that add up."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftersales.cli.human import cell, heading, local, plain, yuan
from aftersales.cli.tables import render
from projections.queries import (
    DEMO_SCORECARD,
    DISCREPANCY_CLASSES,
    SCORECARD,
    hours,
    scorecard_table,
)
from tests.e2e.test_cli import db, jsonl, run

__all__ = ["db"]  # the store fixture, shared with test_cli

SHANGHAI = ZoneInfo("Asia/Shanghai")

#: A cod return the merchant neither answers (R-1) nor refunds (R-COD-4): the platform
#: compensates 129.99 CNY and the merchant is penalised.
COMPENSATED = jsonl(
    {"command": "place_order", "order_id": "K1", "at": "2026-03-01T10:00:00+08:00",
     "payment": "cod", "merchant_id": "M1", "user_id": "U1", "goods_amount": 12999,
     "postage": 600},
    {"command": "confirm_order", "order_id": "K1", "at": "2026-03-01T10:05:00+08:00"},
    {"command": "ship", "order_id": "K1", "at": "2026-03-01T12:00:00+08:00",
     "carrier": "SF", "tracking_no": "SF1"},
    {"command": "deliver", "order_id": "K1", "at": "2026-03-02T12:00:00+08:00"},
    {"command": "request_return", "order_id": "K1", "at": "2026-03-03T10:00:00+08:00",
     "amount": 12999, "reason": "size"},
    {"command": "tick", "at": "2026-03-06T00:00:00+08:00"},
    {"command": "submit_tracking", "order_id": "K1", "at": "2026-03-06T10:00:00+08:00",
     "carrier": "SF", "tracking_no": "SF2"},
    {"command": "confirm_receipt", "order_id": "K1", "at": "2026-03-07T10:00:00+08:00"},
    {"command": "tick", "at": "2026-03-10T00:00:00+08:00"},
    # A second merchant, answered on time: the totals row sums both.
    {"command": "place_order", "order_id": "K2", "at": "2026-03-01T10:00:00+08:00",
     "payment": "online", "merchant_id": "M2", "user_id": "U2", "goods_amount": 5000},
    {"command": "pay", "order_id": "K2", "at": "2026-03-01T10:01:00+08:00"},
    {"command": "ship", "order_id": "K2", "at": "2026-03-01T12:00:00+08:00",
     "carrier": "SF", "tracking_no": "SF3"},
    {"command": "deliver", "order_id": "K2", "at": "2026-03-02T12:00:00+08:00"},
    {"command": "request_refund", "order_id": "K2", "at": "2026-03-03T10:00:00+08:00",
     "amount": 5000, "reason": "broken"},
    {"command": "approve_return", "order_id": "K2", "at": "2026-03-03T16:00:00+08:00"},
)


@pytest.fixture
def compensated(tmp_path: Path, db: str) -> tuple[str, Path, str]:
    (tmp_path / "k.jsonl").write_text(COMPENSATED)
    out = run("ingest", "k.jsonl", "--db", db, "--allow-future", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return db, tmp_path, out.stdout


# --- the values ------------------------------------------------------------------------

@pytest.mark.parametrize("fen,text", [
    (129900, "1,299.00 CNY"), (600, "6.00 CNY"), (5, "0.05 CNY"), (0, "0.00 CNY"),
    (-12999, "-129.99 CNY"), (123456789, "1,234,567.89 CNY")])
def test_fen_read_as_yuan_with_two_decimals_and_the_currency(fen: int, text: str) -> None:
    assert yuan(fen) == text


def test_a_business_time_reads_in_the_business_zone_whatever_its_offset() -> None:
    at = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
    assert local(at, SHANGHAI) == "2026-03-05 10:00:00+08:00"
    assert local("2026-03-05T02:00:00.5+00:00", SHANGHAI) == "2026-03-05 10:00:00.500000+08:00"
    assert local(at, ZoneInfo("UTC")) == "2026-03-05 02:00:00+00:00"


def test_cells_for_a_person_and_plain_values_for_a_program() -> None:
    assert (cell("penalty", True, SHANGHAI), cell("penalty", False, SHANGHAI)) == ("yes", "no")
    assert cell("compensation_fen", 189800, SHANGHAI) == "1,898.00"
    assert heading("compensation_fen") == "compensation (CNY)"
    assert cell("shift_seconds", Decimal(172800), SHANGHAI) == "172,800"
    assert cell("median_response_hours", 48.0, SHANGHAI) == "48.00"
    assert cell("evidence_at", None, SHANGHAI) == "-"
    assert plain(Decimal("3426.05")) == 3426.05 and plain(Decimal(7)) == 7
    assert hours(172800) == 48.0 and hours(5) == 0.0 and hours(18) == 0.01  # halves up
    assert hours(None) is None


def test_a_table_puts_numbers_right_and_the_totals_under_a_rule() -> None:
    rows = [{"merchant_id": "M1", "cases": 3, "penalty": True},
            {"merchant_id": "M22", "cases": 12, "penalty": False}]
    text = render(rows, "table", ("merchant_id", "cases", "penalty"), SHANGHAI,
                  total={"merchant_id": "total", "cases": 15, "penalty": None})
    assert text.splitlines() == [
        "merchant_id  cases  penalty",
        "M1               3  yes",
        "M22             12  no",
        "-----------  -----  -------",
        "total           15  -",
    ]
    as_csv = list(csv.reader(io.StringIO(render(rows, "csv", ("merchant_id", "penalty"),
                                                SHANGHAI))))
    assert as_csv == [["merchant_id", "penalty"], ["M1", "true"], ["M22", "false"]]


def test_the_demo_scorecard_fits_a_terminal() -> None:
    row = {c: 123_456 for c in DEMO_SCORECARD} | {"merchant_id": "M0001",
                                                  "median_response_hours": 48.25}
    widest = max(map(len, render([row], "table", DEMO_SCORECARD, SHANGHAI).splitlines()))
    assert widest <= 100


def test_the_scorecard_splits_discrepancies_by_class_where_there_are_any() -> None:
    """JSON and CSV always carry the five classes after `discrepancies`; the table only
    when some merchant has a discrepancy in the window (else five columns of zeros); the
    page heads them as one group, each by its class."""
    from aftersales.cli.pages import table_head  # Jinja2: loaded for a page only
    at = SCORECARD.index("discrepancies")
    assert SCORECARD[at:at + 6] == ("discrepancies", "discrepancies_outcome",
                                    "discrepancies_actor", "discrepancies_amount",
                                    "discrepancies_deadline", "discrepancies_time")
    assert scorecard_table({"discrepancies": 3}) == SCORECARD
    narrow = scorecard_table({"discrepancies": 0})
    assert "discrepancies" in narrow and not set(narrow) & set(DISCREPANCY_CLASSES)
    assert narrow == tuple(c for c in SCORECARD if c not in DISCREPANCY_CLASSES)
    top, sub = table_head(SCORECARD)
    (group,) = [h for h in top if h["group"] == "discrepancies by class"]
    assert group["span"] == 5
    assert [(h["text"], h["column"]) for h in sub if h["column"] in DISCREPANCY_CLASSES] \
        == [(c.removeprefix("discrepancies_"), c) for c in DISCREPANCY_CLASSES]
    # The page groups every column but the merchant's (its tests: test_scorecard_layout).
    assert [h["column"] for h in top if not h["group"]] == ["merchant_id"]
    assert sum(h["span"] for h in top) == len(sub) + 1 == len(SCORECARD)
    assert "discrepancies by class" not in {h["group"] for h in table_head(narrow)[0]}


# --- the commands ----------------------------------------------------------------------

def test_report_shows_yuan_hours_totals_and_its_caption(
        compensated: tuple[str, Path, str]) -> None:
    db, cwd, _ = compensated
    table = run("report", "--db", db, cwd=cwd).stdout
    caption, body = table.split("\n\n", 1)
    caption = " ".join(caption.split())
    assert "by the business day of each event" in caption and "Asia/Shanghai" in caption
    lines = body.splitlines()
    head = re.split(r"\s{2,}", lines[0])
    assert "compensation (CNY)" in head and "median_response_hours" in head
    rows = {line.split()[0]: re.split(r"\s{2,}", line) for line in lines[1:]}
    assert rows["M1"][head.index("compensation (CNY)")] == "129.99"
    assert rows["(total)"][head.index("compensation (CNY)")] == "129.99"
    assert rows["(total)"][head.index("cases_opened")] == "2"
    assert rows["M2"][head.index("median_response_hours")] == "6.00"
    assert rows["M1"][head.index("median_response_hours")] == "48.00"  # the system's answer
    assert set(lines[-2].replace(" ", "")) == {"-"}  # the rule above the totals
    as_json = json.loads(run("report", "--format", "json", "--db", db, cwd=cwd).stdout)
    assert [r["merchant_id"] for r in as_json] == ["M1", "M2"]  # no totals row for a program
    assert as_json[0]["compensation_fen"] == 12999 and "compensation_amount" not in as_json[0]
    assert as_json[0]["median_response_hours"] == 48.0
    assert list(as_json[0]) == list(SCORECARD)
    assert [as_json[0][c] for c in ("discrepancies", *DISCREPANCY_CLASSES)] == [0] * 6
    assert "discrepancies" in head and not set(head) & set(DISCREPANCY_CLASSES)  # no feed
    as_csv = list(csv.DictReader(io.StringIO(
        run("report", "--format", "csv", "--db", db, cwd=cwd).stdout)))
    assert as_csv[0]["compensation_fen"] == "12999"
    assert "by the business day of each event" in " ".join(
        run("report", "--help", cwd=cwd).stdout.split())


def test_violations_read_in_the_business_zone_and_keep_offsets_for_a_program(
        compensated: tuple[str, Path, str]) -> None:
    db, cwd, _ = compensated
    lines = run("violations", "--db", db, cwd=cwd).stdout.splitlines()
    assert lines[1].startswith("2026-03-05 10:00:00+08:00  RETURN_RESPONSE_48H")
    assert lines[1].endswith("auto_approved        no")
    assert lines[2].endswith("advance_compensated  yes")
    found = json.loads(run("violations", "--format", "json", "--db", db, cwd=cwd).stdout)
    assert datetime.fromisoformat(found[0]["deadline"]) == datetime(2026, 3, 5, 2,
                                                                    tzinfo=UTC)
    assert found[1]["penalty"] is True


def test_status_and_history_show_yuan_in_the_business_zone(
        compensated: tuple[str, Path, str]) -> None:
    db, cwd, _ = compensated
    status = run("status", "K1", "--db", db, cwd=cwd).stdout.splitlines()
    assert status[1] == "  goods 129.99 CNY + postage 6.00 CNY; refunded 129.99 CNY"
    assert status[2] == "  return case 1: compensated, amount 129.99 CNY"
    assert status[3].endswith("at 2026-03-05 10:00:00+08:00: auto_approved")
    doc = json.loads(run("status", "K1", "--json", "--db", db, cwd=cwd).stdout)
    assert (doc["goods_amount"], doc["refunded_total"]) == (12999, 12999)  # fen, as ever
    trail = run("history", "K1", "--db", db, cwd=cwd).stdout.splitlines()
    assert "goods_amount=129.99 CNY, postage=6.00 CNY" in trail[0]
    assert trail[0].split()[1:3] == ["2026-03-01", "10:00:00+08:00"]
    paid = next(line for line in trail if "AdvanceCompensationPaid" in line)
    assert "amount=129.99 CNY" in paid and "deadline 2026-03-09 10:00:00+08:00]" in paid


def test_another_business_zone_is_read_everywhere(tmp_path: Path) -> None:
    (tmp_path / "k.jsonl").write_text(COMPENSATED)
    store, utc = f"sqlite:///{tmp_path / 'u.db'}", {"AFTERSALES_TZ": "UTC"}
    assert run("ingest", "k.jsonl", "--db", store, "--allow-future", cwd=tmp_path,
               env=utc).returncode == 0
    lines = run("violations", "--db", store, cwd=tmp_path, env=utc).stdout.splitlines()
    assert lines[1].startswith("2026-03-05 02:00:00+00:00")
    status = run("status", "K1", "--db", store, cwd=tmp_path, env=utc).stdout
    assert "at 2026-03-05 02:00:00+00:00: auto_approved" in status
    bad = run("status", "K1", "--db", store, cwd=tmp_path, env={"AFTERSALES_TZ": "Mars/Base"})
    assert bad.returncode == 2 and "unknown time zone 'Mars/Base'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_ingest_summary_adds_up_to_what_was_stored(
        compensated: tuple[str, Path, str]) -> None:
    db, cwd, said = compensated
    summary, projected = said.splitlines()
    found = re.search(r"; ([\d,]+) events recorded: ([\d,]+) by the commands .*, ([\d,]+) by "
                      r"the ([\d,]+) timeouts the ticks swept", summary)
    assert found is not None, summary
    total, by_commands, by_sweeps, timeouts = (int(x.replace(",", "")) for x in found.groups())
    assert total == by_commands + by_sweeps
    # The ticks swept R-1 (approval) and R-COD-4 (compensation, penalty): 2 timeouts, 3
    # events.
    assert (timeouts, by_sweeps) == (2, 3)
    check = run("db", "check", "--db", db, cwd=cwd).stdout
    assert f"events recorded: {total}\n" in check
    assert projected == f"projected {total} events into the read models"



def test_tick_says_how_many_events_its_timeouts_recorded(
        compensated: tuple[str, Path, str]) -> None:
    db, cwd, _ = compensated
    (cwd / "more.jsonl").write_text(jsonl(
        {"command": "place_order", "order_id": "K3", "at": "2026-03-10T10:00:00+08:00",
         "payment": "online", "merchant_id": "M1", "user_id": "U3", "goods_amount": 100}))
    assert run("ingest", "more.jsonl", "--db", db, "--allow-future", cwd=cwd).returncode == 0
    ticked = run("tick", "--now", "2026-03-12T00:00:00+08:00", "--allow-future", "--db", db,
                 cwd=cwd)
    assert ticked.stdout.splitlines() == [
        "swept 1 timeouts due before 2026-03-12 00:00:00+08:00 (1 events recorded, with the "
        "refunds, penalties and compensations that follow)",
        "projected 1 events into the read models"]


def test_a_query_behind_the_events_prints_only_its_output(tmp_path: Path, db: str) -> None:
    (tmp_path / "k.jsonl").write_text(COMPENSATED)
    assert run("ingest", "k.jsonl", "--db", db, "--allow-future", "--no-project",
               cwd=tmp_path).returncode == 0
    out = run("report", "--format", "json", "--db", db, cwd=tmp_path)
    assert [r["merchant_id"] for r in json.loads(out.stdout)] == ["M1", "M2"]
    assert out.stderr == ""  # a query says nothing of the projection it needed
    (tmp_path / "more.jsonl").write_text(jsonl(
        {"command": "place_order", "order_id": "K4", "at": "2026-03-11T10:00:00+08:00",
         "payment": "online", "merchant_id": "M1", "user_id": "U4", "goods_amount": 100}))
    run("ingest", "more.jsonl", "--db", db, "--allow-future", "--no-project", cwd=tmp_path)
    page = run("report", "--format", "html", "--db", db, cwd=tmp_path).stdout
    assert page.startswith("<!doctype html>")


def test_a_refused_line_counts_the_timeouts_it_revealed(tmp_path: Path, db: str) -> None:
    late = jsonl(*COMPENSATED.splitlines()[:5],
                 # two days later the merchant answers: refused DEADLINE, and the system's
                 # approval it revealed is recorded with it
                 {"command": "approve_return", "order_id": "K1",
                  "at": "2026-03-06T00:00:00+08:00"})
    (tmp_path / "late.jsonl").write_text(late)
    out = run("ingest", "late.jsonl", "--db", db, "--allow-future", cwd=tmp_path)
    assert out.returncode == 1 and "DEADLINE" in out.stderr
    found = re.search(r"; (\d+) events recorded: (\d+) by the commands", out.stdout)
    assert found is not None
    check = run("db", "check", "--db", db, cwd=tmp_path).stdout
    assert f"events recorded: {found.group(1)}\n" in check
    assert found.group(1) == found.group(2) == "6"  # 5 commands' events and the R-1 one


def test_orders_in_several_currencies_are_said_not_summed_silently(
        tmp_path: Path, db: str) -> None:
    usd = COMPENSATED.replace('"postage": 600}', '"postage": 600, "currency": "USD"}')
    assert '"USD"' in usd
    (tmp_path / "k.jsonl").write_text(usd)
    run("ingest", "k.jsonl", "--db", db, "--allow-future", cwd=tmp_path)
    out = run("report", "--db", db, cwd=tmp_path)
    assert "the orders are in several currencies (CNY, USD)" in out.stderr
    assert "compensation (CNY+USD)" in out.stdout


def test_a_merchant_called_total_is_not_the_totals_row(tmp_path: Path, db: str) -> None:
    (tmp_path / "k.jsonl").write_text(COMPENSATED.replace('"M2"', '"total"'))
    run("ingest", "k.jsonl", "--db", db, "--allow-future", cwd=tmp_path)
    lines = run("report", "--db", db, cwd=tmp_path).stdout.split("\n\n", 1)[1].splitlines()
    assert [line.split()[0] for line in lines if not line.startswith("-")][1:] == [
        "M1", "total", "(total)"]


def test_history_refuses_json_with_another_format(tmp_path: Path, db: str) -> None:
    (tmp_path / "k.jsonl").write_text(COMPENSATED)
    run("ingest", "k.jsonl", "--db", db, "--allow-future", cwd=tmp_path)
    out = run("history", "K1", "--json", "--format", "html", "--db", db, cwd=tmp_path)
    assert out.returncode == 2 and "--json and --format html: give one of them" in out.stderr
