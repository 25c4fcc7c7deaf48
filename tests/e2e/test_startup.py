"""A command loads only what it uses (docs/performance.md, "Starting a command"):
`--help`, `--version` and a bad option load no store, no command models and no SQL
toolkit; `status` and `history` on SQLite load neither the read side's SQL toolkit nor
PostgreSQL's driver nor the command models.  What each loads is read from the process
itself (`sys.modules` after the command ran), not timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cli import run

#: Run one command in a fresh interpreter and print the top-level packages it loaded.
PROBE = """
import json, sys
from aftersales.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})), file=sys.stderr)
"""

HEAVY = {"sqlalchemy", "psycopg", "psycopg_pool", "pydantic", "pydantic_core", "jinja2",
         "starlette", "uvicorn", "prometheus_client"}


def loaded(args: list[str], cwd: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True,
                         text=True, timeout=120)
    return set(json.loads(out.stderr.splitlines()[-1]))


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["status", "--help"],
                                  ["gen", "--orders", "0"]])
def test_help_version_and_a_bad_option_load_nothing_heavy(tmp_path: Path,
                                                          args: list[str]) -> None:
    found = loaded(args, tmp_path)
    assert "aftersales" in found
    assert found.isdisjoint(HEAVY | {"eventsourcing"}), found & (HEAVY | {"eventsourcing"})


def test_status_and_history_on_sqlite_load_only_the_store_and_the_domain(
    tmp_path: Path,
) -> None:
    (tmp_path / "c.jsonl").write_text(
        '{"command":"place_order","order_id":"D1","at":"2026-03-01T10:00:00+08:00",'
        '"payment":"online","merchant_id":"M1","user_id":"U1","goods_amount":100}\n')
    assert run("ingest", "c.jsonl", "--db", "sqlite:///l.db", cwd=tmp_path).returncode == 0
    for args in (["status", "D1"], ["status", "D1", "--json"], ["history", "D1"]):
        found = loaded([*args, "--db", "sqlite:///l.db"], tmp_path)
        assert "eventsourcing" in found  # it did read the order
        assert found.isdisjoint(HEAVY), (args, found & HEAVY)
