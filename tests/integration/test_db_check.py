"""`aftersales db check` as a monitor's probe: `--json`, `--max-lag`, `--max-overdue`, and a
ledger whose read models were never created (ingested with `--no-project`), run through
the command line's own `main` on a SQLite file (and one PostgreSQL schema)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aftersales.cli.main import main
from tests.conftest import drop_schema, new_schema_url

KEYS = {"store", "ok", "events", "pending_deadlines", "overdue_deadlines",
        "oldest_overdue_seconds", "read_models", "inbox", "problems"}
READ_MODEL_KEYS = {"position", "lag_events", "lag_seconds", "schema_version", "created"}
INBOX_KEYS = {"received", "applied", "backlog", "oldest_unapplied_seconds"}


def _lines(*commands: dict[str, object]) -> str:
    return "".join(json.dumps(c) + "\n" for c in commands)


#: Two orders placed long before any wall clock these tests run by, never paid: their
#: payment deadlines (24 h) are long past, and nothing sweeps them until `tick`.
PAST = _lines(
    {"command": "place_order", "order_id": "P1", "at": "2025-01-01T10:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "U1", "goods_amount": 9900,
     "postage": 800},
    {"command": "place_order", "order_id": "P2", "at": "2025-01-01T11:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "U2", "goods_amount": 500,
     "postage": 0},
)


class Cli:
    """The command line on one store, in this process."""

    def __init__(self, url: str, cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.url, self.cwd, self.capsys = url, cwd, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = main([*args, "--db", self.url])
        except SystemExit as e:  # the arguments refused as they were read (argparse)
            code = int(e.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def ingest(self, text: str, *options: str) -> None:
        path = self.cwd / f"lines-{len(list(self.cwd.glob('lines-*')))}.jsonl"
        path.write_text(text)
        code, _, err = self("ingest", str(path), *options)
        assert code == 0, err

    def check(self, *options: str) -> tuple[int, dict[str, Any], str]:
        code, out, err = self("db", "check", "--json", *options)
        return code, json.loads(out), err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, capsys)


@pytest.fixture
def pg_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    url = new_schema_url()
    try:
        yield Cli(url, tmp_path, capsys)
    finally:
        drop_schema(url)


def _assert_shape(doc: dict[str, Any]) -> None:
    assert set(doc) == KEYS
    assert set(doc["read_models"]) == READ_MODEL_KEYS
    assert doc["inbox"] is None or set(doc["inbox"]) == INBOX_KEYS
    assert doc["ok"] is (doc["problems"] == [])


def test_a_fresh_ingest_is_ok_and_caught_up(cli: Cli) -> None:
    cli.ingest(PAST)
    code, doc, _ = cli.check()
    assert code == 0
    _assert_shape(doc)
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["store"] == cli.url
    assert doc["events"] == 2
    assert doc["read_models"] == {"position": 2, "lag_events": 0, "lag_seconds": 0.0,
                                  "schema_version": doc["read_models"]["schema_version"],
                                  "created": True}
    assert isinstance(doc["read_models"]["schema_version"], int)
    assert doc["pending_deadlines"] == 2
    if doc["inbox"] is not None:  # a store with the webhook's inbox: nothing received
        assert doc["inbox"]["received"] == doc["inbox"]["backlog"] == 0
        assert doc["inbox"]["oldest_unapplied_seconds"] is None


def test_a_ledger_ingested_without_projecting_is_usable_its_read_models_not_created(
        cli: Cli) -> None:
    cli.ingest(PAST, "--no-project")
    code, doc, _ = cli.check()
    assert code == 0 and doc["ok"] is True
    _assert_shape(doc)
    models = doc["read_models"]
    assert models["created"] is False and models["schema_version"] is None
    assert (models["position"], models["lag_events"]) == (0, 2)  # every event is behind
    assert models["lag_seconds"] > 0
    code, out, err = cli("db", "check")
    assert code == 0, err
    assert "read models: not created (run `aftersales project`)" in out
    assert "not usable" not in out + err


def test_max_lag_fails_while_events_are_not_projected(cli: Cli) -> None:
    cli.ingest(PAST, "--no-project")
    code, doc, err = cli.check("--max-lag", "0")
    assert code == 1 and doc["ok"] is False
    assert len(doc["problems"]) == 1 and "--max-lag 0" in doc["problems"][0]
    assert "never created" in doc["problems"][0]
    assert doc["problems"][0] in err
    code, _, _ = cli("db", "check", "--max-lag", "0")  # the text form: the same exit code
    assert code == 1
    assert cli("project")[0] == 0
    code, doc, _ = cli.check("--max-lag", "0")
    assert code == 0 and doc["read_models"]["lag_seconds"] == 0.0
    cli.ingest(_lines({"command": "pay", "order_id": "P1",
                       "at": "2025-01-01T12:00:00+08:00"}), "--no-project")
    code, doc, _ = cli.check("--max-lag", "0")  # created, one event behind
    assert code == 1 and doc["read_models"]["lag_events"] == 1
    assert "never created" not in doc["problems"][0]
    code, doc, _ = cli.check("--max-lag", "86400")  # behind, but within the bound
    assert code == 0 and doc["ok"] is True


def test_max_overdue_fails_until_the_sweep_runs(cli: Cli) -> None:
    cli.ingest(PAST)
    code, doc, _ = cli.check()
    assert code == 0  # overdue, but no bound given: as before
    assert doc["overdue_deadlines"] == 2
    assert doc["oldest_overdue_seconds"] > 86400
    code, doc, err = cli.check("--max-overdue", "60")
    assert code == 1 and doc["ok"] is False
    assert len(doc["problems"]) == 1 and "--max-overdue 60" in doc["problems"][0]
    assert "aftersales tick" in err
    code, out, _ = cli("db", "check", "--max-overdue", "60")
    assert code == 1 and "2 past due" in out
    assert cli("tick")[0] == 0
    code, doc, _ = cli.check("--max-overdue", "60", "--max-lag", "0")
    assert code == 0 and doc["ok"] is True
    assert doc["overdue_deadlines"] == 0 and doc["oldest_overdue_seconds"] is None


def test_a_store_whose_ledger_tables_are_missing_is_not_usable(cli: Cli, tmp_path: Path
                                                               ) -> None:
    cli.ingest(PAST)
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        conn.execute("DROP TABLE ledger_deadlines")
    conn.close()
    code, doc, _ = cli.check()
    assert code == 1 and doc["ok"] is False
    assert "is not usable" in doc["problems"][0] and "db init" in doc["problems"][0]
    code, _, err = cli("db", "check")
    assert code == 1 and "is not usable" in err


def test_no_ledger_at_the_url_is_said_in_the_object_too(cli: Cli) -> None:
    code, out, err = cli("db", "check", "--json")
    assert code == 2
    doc = json.loads(out)
    _assert_shape(doc)
    assert doc["ok"] is False and doc["events"] is None
    assert doc["problems"][0].startswith("no ledger at ") and "no ledger at " in err


def test_a_bound_must_be_a_number_of_seconds(cli: Cli) -> None:
    cli.ingest(PAST)
    code, _, err = cli("db", "check", "--max-lag", "-1")
    assert code == 2 and "argument --max-lag: '-1': expected 0 to" in err
    code, _, err = cli("db", "upgrade", "--json")
    assert code == 2 and "db check" in err


def test_the_same_object_on_postgresql(pg_cli: Cli) -> None:
    pg_cli.ingest(PAST, "--no-project")
    code, doc, _ = pg_cli.check("--max-lag", "0", "--max-overdue", "60")
    assert code == 1
    _assert_shape(doc)
    assert doc["events"] == 2 and doc["read_models"]["created"] is False
    assert doc["read_models"]["lag_events"] == 2 and doc["read_models"]["lag_seconds"] > 0
    assert len(doc["problems"]) == 2
    assert pg_cli("tick")[0] == 0  # (and projects)
    code, doc, _ = pg_cli.check("--max-lag", "0", "--max-overdue", "60")
    assert code == 0 and doc["ok"] is True
    _assert_shape(doc)
    assert doc["read_models"]["created"] is True
    assert doc["read_models"]["lag_events"] == 0 and doc["events"] >= 4
