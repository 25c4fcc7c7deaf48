"""The command line end to end: subprocesses on temporary SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aftersales.application.commands import parse_command

pytestmark = pytest.mark.slow

AT = "2026-03-01T10:00:00+08:00"


def run(*args: str, cwd: Path, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("AFTERSALES_DB", "COLUMNS")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "aftersales", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env=full_env, timeout=300)


def jsonl(*lines: dict[str, object] | str) -> str:
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"


ONLINE_RETURN = jsonl(
    {"command": "place_order", "order_id": "D1", "at": AT, "payment": "online",
     "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900, "postage": 800},
    {"command": "pay", "order_id": "D1", "at": "2026-03-01T10:05:00+08:00"},
    {"command": "ship", "order_id": "D1", "at": "2026-03-01T18:00:00+08:00", "carrier": "SF",
     "tracking_no": "SF123"},
    {"command": "deliver", "order_id": "D1", "at": "2026-03-03T09:00:00+08:00"},
    {"command": "request_return", "order_id": "D1", "at": "2026-03-03T10:00:00+08:00",
     "reason": "wrong size"},
    {"command": "tick", "at": "2026-03-05T10:00:01+08:00"},
    {"command": "submit_tracking", "order_id": "D1", "at": "2026-03-05T12:00:00+08:00",
     "carrier": "YTO", "tracking_no": "YT9"},
    "",
    '{"command": "pay", "order_id": "D1", "at": "2026-03-06T10:00:00"}',
    {"command": "approve_return", "order_id": "D1", "at": "2026-03-06T10:00:00+08:00"},
    {"command": "pay", "order_id": "NOPE", "at": "2026-03-06T10:00:00+08:00"},
)


@pytest.fixture
def db(db_url: str) -> str:
    """Each test runs on a SQLite file and on a PostgreSQL schema."""
    return db_url


def test_ingest_reports_refused_lines_goes_on_and_exits_non_zero(tmp_path: Path,
                                                                  db: str) -> None:
    (tmp_path / "c.jsonl").write_text(ONLINE_RETURN)
    first = run("ingest", "c.jsonl", "--db", db, cwd=tmp_path)
    assert first.returncode == 1
    assert first.stderr.splitlines() == [
        "line 9: INPUT: field 'at': a timestamp needs an offset, e.g. 2026-03-01T10:00:00+08:00",
        "line 10: DEADLINE: approve_return: the R-1 deadline of case 1 passed and the "
        "system acted",
        "line 11: UNKNOWN-ORDER: order NOPE was never placed",
    ]
    assert first.stdout.startswith("10 lines: 6 applied, 0 already applied, 1 ticks, 3 refused")
    # Re-ingesting: applied lines are skipped silently, refused ones are refused again
    # (a refusal decided on the order's history is remembered, and says so).
    again = run("ingest", "c.jsonl", "--db", db, cwd=tmp_path)
    assert again.returncode == 1
    assert again.stderr.splitlines() == [
        first.stderr.splitlines()[0],
        first.stderr.splitlines()[1] + " (remembered: this line (its command_id derived "
        "from its content) was refused so when first decided, and a command is decided "
        "once; to have it decided on the order as it is now, give the line a command_id "
        "of its own)",
        first.stderr.splitlines()[2]]
    assert again.stdout.startswith("10 lines: 0 applied, 6 already applied, 1 ticks, 3 refused")


def test_status_json_is_the_contract(tmp_path: Path, db: str) -> None:
    run("ingest", "-", "--db", db, cwd=tmp_path, stdin=ONLINE_RETURN)
    out = run("status", "D1", "--json", "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {k: doc[k] for k in ("order_id", "payment", "merchant_id", "order_status",
                                "refunded_total")} == {
        "order_id": "D1", "payment": "online", "merchant_id": "M1",
        "order_status": "delivered", "refunded_total": 0}
    assert doc["return"] == {"case": 1, "status": "in_transit",
                             "deadline": "2026-03-12T12:00:00+08:00", "awaiting": "merchant",
                             "amount": 9900, "kind": "return", "case_ref": None,
                             "carrier": "YTO", "tracking_no": "YT9",
                             "replacement_carrier": None, "replacement_tracking_no": None,
                             "arbitration": None}
    assert doc["violations"] == [{"rule": "RETURN_RESPONSE_48H", "case": 1,
                                  "deadline": "2026-03-05T10:00:00+08:00",
                                  "consequence": "auto_approved", "penalty": False}]
    assert doc["lapses"] == []
    human = run("status", "D1", "--db", db, cwd=tmp_path)
    assert "return case 1: in_transit" in human.stdout
    assert "violation RETURN_RESPONSE_48H" in human.stdout


def test_status_as_of_and_unknown_orders(tmp_path: Path, db: str) -> None:
    run("ingest", "-", "--db", db, cwd=tmp_path, stdin=ONLINE_RETURN)
    then = run("status", "D1", "--json", "--as-of", "2026-03-01T12:00:00+08:00", "--db", db,
               cwd=tmp_path)
    assert json.loads(then.stdout)["order_status"] == "paid"
    before = run("status", "D1", "--as-of", "2026-03-01T09:59:59+08:00", "--db", db,
                 cwd=tmp_path)
    assert before.returncode != 0 and "not placed" in before.stderr
    unknown = run("status", "NOPE", "--db", db, cwd=tmp_path)
    assert unknown.returncode != 0
    naive = run("status", "D1", "--as-of", "2026-03-02T00:00:00", "--db", db, cwd=tmp_path)
    assert naive.returncode == 2 and "offset" in naive.stderr


def test_history_is_the_audit_trail(tmp_path: Path, db: str) -> None:
    run("ingest", "-", "--db", db, cwd=tmp_path, stdin=ONLINE_RETURN)
    out = run("history", "D1", "--json", "--db", db, cwd=tmp_path)
    entries = json.loads(out.stdout)
    assert [e["event"] for e in entries] == [
        "OrderPlaced", "PaymentReceived", "OrderShipped", "OrderDelivered", "ReturnRequested",
        "ReturnAutoApproved", "TrackingSubmitted"]
    auto = entries[5]
    assert (auto["actor"], auto["at"], auto["rule"], auto["deadline"]) == (
        "system", "2026-03-05T10:00:00+08:00", "R-1", "2026-03-05T10:00:00+08:00")
    assert all(e["recorded_at"] and e["at"] for e in entries)
    # The id that made each line idempotent: derived from its content when it had none.
    pay = parse_command(ONLINE_RETURN.splitlines()[1].encode())
    assert pay.command_id is None
    assert entries[1]["actor"] == "user"
    assert entries[1]["command_id"] == pay.identity()[0]
    assert entries[1]["command_id"].startswith("sha256:")
    assert auto["command_id"] is None  # a system act answers no command
    human = run("history", "D1", "--db", db, cwd=tmp_path)
    assert "ReturnAutoApproved" in human.stdout and "[R-1, deadline" in human.stdout


def test_tick_sweeps_due_timeouts(tmp_path: Path, db: str) -> None:
    run("ingest", "-", "--db", db, cwd=tmp_path, stdin=jsonl(ONLINE_RETURN.splitlines()[0]))
    early = run("tick", "--now", "2026-03-02T10:00:00+08:00", "--db", db, cwd=tmp_path)
    assert early.stdout.startswith("swept 0 timeouts")
    late = run("tick", "--now", "2026-03-02T10:00:01+08:00", "--db", db, cwd=tmp_path)
    assert late.stdout.startswith("swept 1 timeouts")
    status = run("status", "D1", "--json", "--db", db, cwd=tmp_path)
    assert json.loads(status.stdout)["lapses"] == [
        {"rule": "UNPAID_24H", "case": None, "deadline": "2026-03-02T10:00:00+08:00"}]
    wall_clock = run("tick", "--db", db, cwd=tmp_path)
    assert wall_clock.returncode == 0


def test_store_from_environment_and_default_file(tmp_path: Path) -> None:
    line = ONLINE_RETURN.splitlines()[0] + "\n"
    run("ingest", "-", cwd=tmp_path, stdin=line)
    assert (tmp_path / "aftersales.db").exists()
    other = tmp_path / "other.db"
    run("ingest", "-", cwd=tmp_path, stdin=line, env={"AFTERSALES_DB": f"sqlite:///{other}"})
    assert other.exists()
    bad = run("status", "D1", "--db", "mysql://nowhere", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown store URL" in bad.stderr
    missing = run("status", "D1", "--db", f"sqlite:///{tmp_path}/no/such/dir.db", cwd=tmp_path)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("aftersales: ")


def test_generated_workload_ingests_without_refusals_and_quietly_when_piped(
    tmp_path: Path, db: str
) -> None:
    gen = run("gen", "--orders", "200", "--seed", "5", "--days", "25", cwd=tmp_path)
    (tmp_path / "w.jsonl").write_text(gen.stdout)
    out = run("ingest", "w.jsonl", "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[:2000]
    assert out.stderr == ""  # no progress bar when not on a terminal
    assert " 0 refused" in out.stdout


def test_demo_runs_and_prints_a_compliance_summary(tmp_path: Path) -> None:
    out = run("demo", "--orders", "300", "--days", "25", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[:2000]
    assert "violations by rule (read model `violations`):" in out.stdout
    assert "RETURN_RESPONSE_48H" in out.stdout and "worst merchants" in out.stdout
    assert "projected" in out.stdout
    assert (tmp_path / "aftersales.db").exists()
    before = (tmp_path / "aftersales.db").read_bytes()
    for again in (("--orders", "300", "--days", "25"), ("--platform", "douyin")):
        refused = run("demo", *again, cwd=tmp_path)  # never into a store with events
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr == (
            "aftersales: the store at sqlite:///aftersales.db already holds events: the "
            "demo writes its made-up orders only into an empty store; nothing was written "
            "(remove aftersales.db (with its -wal and -shm files) or give another --db, "
            "e.g. --db sqlite:///demo.db)\n")
    assert (tmp_path / "aftersales.db").read_bytes() == before
