"""Errors a user can act on (issue 10, items 4 and 8): a command that only reads never
creates a ledger; a PostgreSQL server that cannot be reached says why, at once; a store
that cannot be written says which and why, on one line; a closed pipe is not an error;
a runaway clock is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_cli import AT, ONLINE_RETURN, db, run
from tests.faults import SmallDisk
from tests.reliability.snapshot import cli, env

__all__ = ["db"]

pytestmark = pytest.mark.slow

READERS = [["status", "D1"], ["history", "D1"], ["report"], ["violations"], ["verify"],
           ["db", "check"], ["tick"], ["project"], ["rebuild"], ["db", "upgrade"]]


@pytest.mark.parametrize("command", READERS, ids=lambda c: " ".join(c))
def test_a_command_that_only_reads_creates_no_ledger(tmp_path: Path, command: list[str]
                                                    ) -> None:
    where = tmp_path / "aftersales.db"
    found = run(*command, cwd=tmp_path)
    assert found.returncode == 2
    assert found.stderr == ("aftersales: no ledger at sqlite:///aftersales.db (a relative "
                            f"path: the file {where}, in the working directory): nothing was "
                            "created (give --db or $AFTERSALES_DB, or start one with "
                            "`aftersales ingest FILE` or `aftersales db init`)\n")
    assert not where.exists()


def test_a_command_that_only_reads_creates_no_postgres_tables(tmp_path: Path) -> None:
    from tests.conftest import drop_schema, new_schema_url

    url = new_schema_url()
    try:
        found = run("report", "--db", url, cwd=tmp_path)
        assert found.returncode == 2 and "no ledger at postgresql://" in found.stderr
        assert run("db", "check", "--db", url, cwd=tmp_path).returncode == 2
        assert run("db", "init", "--db", url, cwd=tmp_path).returncode == 0
        assert run("report", "--db", url, cwd=tmp_path).returncode == 0
    finally:
        drop_schema(url)


def test_ingesting_a_missing_file_creates_no_ledger(tmp_path: Path) -> None:
    missing = run("ingest", "nope.jsonl", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == "aftersales: cannot read nope.jsonl: No such file or directory\n"
    assert not (tmp_path / "aftersales.db").exists()


@pytest.mark.parametrize(("url", "reason"), [
    ("postgresql://postgres@127.0.0.1:5432/no_such_database", 'database "no_such_database" '
     "does not exist"),
    ("postgresql://postgres@127.0.0.1:1/aftersales_test", "Connection refused"),
    ("postgresql://postgres@no-such-host.invalid/aftersales_test", "no-such-host.invalid"),
    ("postgresql://nobody_here@127.0.0.1:5432/aftersales_test", 'role "nobody_here" does '
     "not exist"),
], ids=["database", "port", "host", "role"])
def test_a_postgres_server_that_cannot_be_reached_says_why(tmp_path: Path, url: str,
                                                           reason: str) -> None:
    from tests.conftest import require_postgres

    require_postgres()
    found = run("status", "D1", "--db", url, cwd=tmp_path, env={"AFTERSALES_RETRY_FOR": "1"})
    assert found.returncode == 3
    said = found.stderr.strip().splitlines()
    assert said[0].startswith("aftersales: ") and "cannot connect to PostgreSQL at " in said[0]
    assert reason in said[0] and "couldn't get a connection" not in found.stderr
    # Each is reported at once, on one line: a server that refuses a command's first
    # connection too (one that refuses it later, restarting, is waited for:
    # tests/reliability/test_store_failures.py; tests/e2e/test_store_urls.py).
    assert len(said) == 1, said


def test_a_read_only_store_is_one_line_naming_it(tmp_path: Path) -> None:
    disk = SmallDisk(tmp_path / "disk", "8m")
    try:
        url = f"sqlite:///{disk.path / 'ledger.db'}"
        assert run("ingest", "-", "--db", url, cwd=tmp_path,
                   stdin=ONLINE_RETURN.splitlines()[0] + "\n").returncode == 0
        disk.remount("ro")
        later = json.dumps({"command": "pay", "order_id": "D1", "at": AT})
        for args in (["report", "--db", url], ["project", "--db", url]):  # only read
            found = run(*args, cwd=tmp_path)  # (tests/e2e/test_store_urls.py)
            assert found.returncode == 0 and found.stderr == "", (args, found.stderr)
        for args in (["ingest", "-", "--db", url], ["rebuild", "--db", url],
                     ["ingest", "-", "--db", f"sqlite:///{disk.path / 'new.db'}"]):
            found = run(*args, cwd=tmp_path, stdin=later + "\n")
            assert found.returncode == 3, (args, found.stderr)
            lines = [x for x in found.stderr.splitlines() if not x.startswith(
                "aftersales: waiting:")]
            assert len(lines) == 1 and str(disk.path) in lines[0], (args, found.stderr)
            assert "read" in lines[0].lower() or "open" in lines[0].lower(), lines[0]
            assert "Traceback" not in found.stderr
    finally:
        disk.unmount()


def test_generating_into_a_closed_pipe_is_not_an_error(tmp_path: Path) -> None:
    gen = subprocess.Popen(cli("gen", "--orders", "2000"), cwd=tmp_path, env=env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert gen.stdout is not None and gen.stderr is not None
    first = gen.stdout.readline()
    gen.stdout.close()  # as `| head -1` does
    assert json.loads(first)["command"] in ("place_order", "tick")
    assert gen.wait(timeout=120) == 0
    assert gen.stderr.read() == b""
    gen.stderr.close()


def test_FUTURE_a_runaway_clock_is_refused_and_changes_nothing(tmp_path: Path, db: str
                                                              ) -> None:
    assert run("ingest", "-", "--db", db, cwd=tmp_path, stdin=ONLINE_RETURN
               ).returncode == 1  # (it holds refused lines of its own)
    before = run("status", "D1", "--json", "--db", db, cwd=tmp_path).stdout
    sweep = run("tick", "--now", "2199-01-01T00:00:00+00:00", "--db", db, cwd=tmp_path)
    assert sweep.returncode == 2
    assert sweep.stderr.startswith("aftersales: FUTURE: business time 2199-01-01T00:00:00"
                                   "+00:00 is ")
    assert "ahead of the wall clock" in sweep.stderr and "--allow-future" in sweep.stderr
    line = json.dumps({"command": "confirm_receipt", "order_id": "D1",
                       "at": "2199-01-01T00:00:00+00:00"})
    ingest = run("ingest", "-", "--db", db, cwd=tmp_path, stdin=line + "\n")
    assert ingest.returncode == 1 and "line 1: FUTURE: business time" in ingest.stderr
    assert run("status", "D1", "--json", "--db", db, cwd=tmp_path).stdout == before
    out_of_range = run("tick", "--now", "2200-01-01T00:00:00+00:00", "--db", db,
                       cwd=tmp_path)
    assert out_of_range.returncode == 2 and "is out of range" in out_of_range.stderr
    replay = run("tick", "--now", "2199-01-01T00:00:00+00:00", "--allow-future", "--db", db,
                 cwd=tmp_path)
    assert replay.returncode == 0 and replay.stdout.startswith("swept 1 timeouts")


def test_an_ingest_whose_output_is_closed_says_it_stopped(tmp_path: Path) -> None:
    gen = run("gen", "--orders", "300", "--days", "20", cwd=tmp_path)
    (tmp_path / "w.jsonl").write_text(gen.stdout)
    ingest = subprocess.Popen(cli("ingest", "w.jsonl", "--ack", "--batch", "1"),
                              cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert ingest.stdout is not None and ingest.stderr is not None
    assert ingest.stdout.readline().startswith(b"ack 1 ")
    ingest.stdout.close()  # as `| head -1` does: the rest cannot be acknowledged
    assert ingest.wait(timeout=300) == 1
    said = ingest.stderr.read().decode()
    ingest.stderr.close()
    assert "standard output was closed: stopped" in said and "Traceback" not in said
    again = run("ingest", "w.jsonl", cwd=tmp_path)  # and a re-run carries on
    assert again.returncode == 0 and " 0 refused" in again.stdout


def test_FUTURE_a_parallel_ingest_refuses_a_runaway_clock_too(tmp_path: Path) -> None:
    gen = run("gen", "--orders", "200", "--days", "20", cwd=tmp_path)
    lines = gen.stdout.splitlines()
    lines.insert(50, json.dumps({"command": "tick", "at": "2199-01-01T00:00:00+00:00"}))
    (tmp_path / "w.jsonl").write_text("\n".join(lines) + "\n")
    found = run("ingest", "w.jsonl", "--workers", "2", cwd=tmp_path)
    assert found.returncode == 1
    assert found.stderr.startswith("line 51: FUTURE: business time 2199-01-01")
    assert " 1 refused (FUTURE 1)" in found.stdout
