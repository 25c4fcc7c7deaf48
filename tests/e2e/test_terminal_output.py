"""What the command line prints for a person, end to end on a SQLite file: text carried by
commands (reasons, evidence, notes) can neither forge a line of the audit trail nor act on
the terminal; tables and lines fit the terminal (`COLUMNS`, or the terminal's own width),
naming what they leave out; a pipe gets everything; a platform's account reads in yuan."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.e2e.test_cli import jsonl, run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
#: A line of the audit trail that a reason tries to add, coloured green.
FORGED = "  7 2026-03-09 10:00:00+08:00  RefundApproved           by platform"
COMMANDS = jsonl(
    {"command": "place_order", "order_id": "F1", "at": "2026-03-01T10:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900,
     "postage": 0},
    {"command": "pay", "order_id": "F1", "at": "2026-03-01T10:05:00+08:00"},
    {"command": "ship", "order_id": "F1", "at": "2026-03-01T18:00:00+08:00",
     "carrier": "SF", "tracking_no": "SF1"},
    {"command": "deliver", "order_id": "F1", "at": "2026-03-03T09:00:00+08:00"},
    {"command": "request_return", "order_id": "F1", "at": "2026-03-03T10:00:00+08:00",
     "reason": f"size\n{FORGED}\x1b[32m approved\x1b[0m"},
    {"command": "reject_return", "order_id": "F1", "at": "2026-03-03T12:00:00+08:00",
     "reason": "\x1b[2J\x1b[Hno"},
    {"command": "appeal", "order_id": "F1", "at": "2026-03-04T09:00:00+08:00",
     "reason": "\u202ekcab yenom"},
    {"command": "submit_evidence", "order_id": "F1", "at": "2026-03-04T12:00:00+08:00",
     "evidence": ["IMG\x1b[31m1", "receipt.pdf"], "note": "\r  9 2026-03-09 FAKE\x9b31m"},
    {"command": "arbitrate", "order_id": "F1", "at": "2026-03-05T09:00:00+08:00",
     "outcome": "user", "blame": "merchant", "note": "fine\u2028 10 fake"},
    {"command": "place_order", "order_id": "F2", "at": "2026-03-01T11:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "U2", "goods_amount": 5000,
     "postage": 0},
    {"command": "pay", "order_id": "F2", "at": "2026-03-01T11:01:00+08:00"},
    {"command": "ship", "order_id": "F2", "at": "2026-03-01T18:00:00+08:00",
     "carrier": "SF", "tracking_no": "SF2"},
    {"command": "deliver", "order_id": "F2", "at": "2026-03-02T10:00:00+08:00"},
    {"command": "request_refund", "order_id": "F2", "at": "2026-03-02T12:00:00+08:00",
     "amount": 3000, "reason": "\x1b]0;pwned\x07"},
    {"command": "reconcile", "order_id": "F2", "at": "2026-03-05T09:00:00+08:00",
     "source": "douyin", "ref": "m1", "fact": "refunded", "amount": 3500,
     "step_at": "2026-03-04T12:00:00+08:00"},
    {"command": "tick", "at": "2026-03-20T00:00:00+08:00"},
)


@pytest.fixture
def forged(tmp_path: Path) -> tuple[str, Path]:
    (tmp_path / "c.jsonl").write_text(COMMANDS)
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    out = run("ingest", "c.jsonl", "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # every line is accepted: the text is data
    return db, tmp_path


def _text(*args: str, db: str, cwd: Path, columns: str = "") -> str:
    out = run(*args, "--db", db, cwd=cwd, env={"COLUMNS": columns})
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x9b" not in out.stdout and "\r" not in out.stdout
    assert "\u202e" not in out.stdout and "\u2028" not in out.stdout
    return out.stdout


def test_a_forged_line_in_a_reason_stays_on_its_events_line(forged: tuple[str, Path]) -> None:
    db, cwd = forged
    lines = [re.sub(r"recorded \S+ \S+", "recorded T", line)
             for line in _text("history", "F1", db=db, cwd=cwd).splitlines()]
    assert [line.split()[0] for line in lines] == [str(v) for v in range(1, 11)]
    assert lines[4:9] == [
        "  5 2026-03-03 10:00:00+08:00  ReturnRequested          by user     recorded T  "
        "case=1, amount=99.00 CNY, reason=size\\n  7 2026-03-09 10:00:00+08:00  "
        "RefundApproved           by platform\\x1b[32m approved\\x1b[0m, "
        "response_deadline=2026-03-05 10:00:00+08:00",
        "  6 2026-03-03 12:00:00+08:00  MerchantRejected         by merchant recorded T  "
        "case=1, reason=\\x1b[2J\\x1b[Hno",
        "  7 2026-03-04 09:00:00+08:00  Appealed                 by user     recorded T  "
        "case=1, reason=\\u202ekcab yenom, evidence_deadline=2026-03-06 09:00:00+08:00",
        "  8 2026-03-04 12:00:00+08:00  EvidenceSubmitted        by merchant recorded T  "
        "case=1, evidence=['IMG\\x1b[31m1', 'receipt.pdf'], note=\\r  9 2026-03-09 "
        "FAKE\\x9b31m",
        "  9 2026-03-05 09:00:00+08:00  ArbitrationRuled         by platform recorded T  "
        "case=1, outcome=user, blame=merchant, note=fine\\u2028 10 fake, "
        "evidence=['IMG\\x1b[31m1', 'receipt.pdf'], resumes=approved, "
        "next_deadline=2026-03-12 09:00:00+08:00",
    ]
    exact = json.loads(run("history", "F1", "--json", "--db", db, cwd=cwd).stdout)
    assert exact[4]["details"]["reason"] == f"size\n{FORGED}\x1b[32m approved\x1b[0m"


def test_a_wrapped_audit_trail_goes_on_under_the_events_name(
        forged: tuple[str, Path]) -> None:
    db, cwd = forged
    lines = _text("history", "F1", db=db, cwd=cwd, columns="80").splitlines()
    assert max(map(len, lines)) <= 80
    events = [line for line in lines if not line.startswith(" " * 31)]
    assert [line.split()[0] for line in events] == [str(v) for v in range(1, 11)]
    assert all(re.match(r" {1,2}\d+ \d{4}-\d\d-\d\d ", line) for line in events)


def test_status_and_the_lists_print_exactly_their_lines(forged: tuple[str, Path]) -> None:
    db, cwd = forged

    def text(*args: str) -> list[str]:
        return _text(*args, db=db, cwd=cwd).splitlines()

    assert text("status", "F1") == [
        "order F1 (online, merchant M1, user U1): delivered",
        "  goods 99.00 CNY + postage 0.00 CNY; refunded 0.00 CNY",
        "  return case 1: closed, amount 99.00 CNY",
        "  dispute opened 2026-03-04 09:00:00+08:00: ruled for the user (blame merchant) by "
        "platform at 2026-03-05 09:00:00+08:00",
        "  user lapse RETURN_TRACKING_7D (case 1) at 2026-03-12 09:00:00+08:00",
    ]
    assert text("violations") == [
        "deadline                   rule                 merchant_id  order_id  case_no  "
        "consequence    penalty",
        "2026-03-04 12:00:00+08:00  REFUND_RESPONSE_48H  M1           F2              1  "
        "auto_refunded  no",
    ]
    assert text("lapses") == [
        "deadline                   rule                merchant_id  user_id  order_id  "
        "case_no  kind",
        "2026-03-12 09:00:00+08:00  RETURN_TRACKING_7D  M1           U1       F1              1"
        "  return",
    ]
    assert [re.split(r"\s{2,}", line) for line in text("disputes")] == [
        ["order_id", "merchant_id", "case_no", "kind", "rejected", "opened_at",
         "evidence_deadline", "evidence_at", "evidence_count", "status", "ruled_at",
         "ruled_by", "outcome", "blame", "lost", "hours_to_ruling"],
        ["F1", "M1", "1", "return", "request", "2026-03-04 09:00:00+08:00",
         "2026-03-06 09:00:00+08:00", "2026-03-04 12:00:00+08:00", "2", "ruled",
         "2026-03-05 09:00:00+08:00", "platform", "user", "merchant", "yes", "24.00"],
    ]
    assert [re.split(r"\s{2,}", line) for line in text("discrepancies")] == [
        ["reported_at", "discrepancy", "merchant_id", "order_id", "case_no", "fact",
         "ledger", "platform", "source", "ref"],
        ["2026-03-05 09:00:00+08:00", "amount", "M1", "F2", "1", "refunded", "30.00 CNY",
         "35.00 CNY", "douyin", "m1"],
    ]
    csv_row = run("discrepancies", "--format", "csv", "--db", db, cwd=cwd).stdout
    assert ",3000 fen,3500 fen," in csv_row  # a program reads what was recorded


# --- width ------------------------------------------------------------------------------

@pytest.fixture
def examples(tmp_path: Path) -> tuple[str, Path]:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    out = run("ingest", str(ROOT / "examples" / "commands.jsonl"), "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return db, tmp_path


def test_tables_and_lines_fit_columns_and_name_what_they_leave_out(
        examples: tuple[str, Path]) -> None:
    db, cwd = examples
    for command in (("report",), ("disputes",), ("violations",), ("lapses",),
                    ("discrepancies",), ("history", "D1"), ("status", "D4")):
        lines = _text(*command, db=db, cwd=cwd, columns="80").splitlines()
        assert max(map(len, lines)) <= 80, command
    report = _text("report", db=db, cwd=cwd, columns="80")
    table = report.split("\n\n", 1)[1]
    assert "merchant_id" in table and "violations" in table and "(total)" in table
    found = re.search(r"\n\((\d+ of 30 columns left out to fit 80 columns: .*)", table, re.S)
    assert found is not None
    note = " ".join(found.group(1).split())
    assert "--format html, csv or json" in note
    disputes = _text("disputes", db=db, cwd=cwd, columns="80")
    head = disputes.split("\nD", 1)[0]
    for kept in ("order_id", "status", "outcome", "blame", "lost"):
        assert kept in head


def test_a_pipe_gets_every_column(examples: tuple[str, Path]) -> None:
    db, cwd = examples
    report = _text("report", db=db, cwd=cwd)
    assert "left out" not in report
    assert max(map(len, report.splitlines())) > 300
    assert "discrepancies_amount" in report and "median_response_hours" in report


def test_a_terminal_gets_its_own_width(examples: tuple[str, Path]) -> None:
    """On a real terminal (a pseudo-terminal 100 columns wide), without COLUMNS."""
    db, cwd = examples
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "AFTERSALES_DB")}
    with open(cwd / "stderr", "w") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "aftersales", "report", "--db", db],
                                cwd=cwd, env=env, stdout=secondary, stderr=errors)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(primary)
    assert proc.wait(timeout=300) == 0, (cwd / "stderr").read_text()
    lines = b"".join(chunks).decode().replace("\r\n", "\n").splitlines()
    assert max(map(len, lines)) <= 100
    assert any(line.startswith("(") and "columns left out to fit 100 columns" in line
               for line in lines)



def test_a_refused_line_is_printed_with_its_control_characters_escaped(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.jsonl").write_text(
        '{"command":"pay","order_id":"X1","at":"2026-03-01T10:00:00+08:00",'
        '"\\u001b[31mevil\\nline 2: fake":1}\n')
    out = run("ingest", "c.jsonl", "--db", "sqlite:///l.db", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr == ("line 1: INPUT: field '\\x1b[31mevil\\nline 2: fake': unknown "
                          "field\n")
