"""Anchors outside the store: `aftersales anchor` appends the log's position and head digest
to an anchor log in a file or another database (never the ledger's own); `verify` checks
the log against every anchor, so that a store rewritten with every digest recomputed, or
cut short at its end, is caught though its chains hold; `tick --anchor-every` and
`project --follow --anchor-every` anchor as they go.  On SQLite and PostgreSQL, through the
command line's own `main` (the follower as a subprocess)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from aftersales import Ledger
from aftersales.cli.main import main
from aftersales.domain.order import order_uuid
from aftersales.storage.anchor import Anchor, DatabaseAnchorLog, FileAnchorLog, parse_anchors
from aftersales.storage.chain import digest, id_bytes
from tests.conftest import PG_URL, _conninfo, require_postgres
from tests.faults import Store
from tests.reliability.test_tampering import (
    _recompute_log,
    _recompute_order,
    altered,
    refund_row,
)
from tests.scenario import Scenario, refunded_returns

#: How long anything here may take before the test fails (never a pause to wait out).
PATIENCE = 60.0


class Cli:
    """The command line on one ledger, in this process."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url, self.capsys = url, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*args, "--db", self.url])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(db_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("AFTERSALES_ANCHOR", raising=False)
    return Cli(db_url, capsys)


_returns = refunded_returns  # orders with a refunded return and a second request each


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    """D0 delivered; then D1 and D2 with a refunded return each."""
    app = Ledger(db_url)
    Scenario(app, "online", order_id="D0").to_delivered()
    yield app
    app.close()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    db = Store(db_url)
    yield db
    db.close()


def _end(ledger: Ledger) -> int:
    return ledger.recorder.max_notification_id() or 0


def _anchor_database() -> str:
    """A PostgreSQL database beside the tests' own (another database: not the ledger's)."""
    require_postgres()
    name = f"{make_url(PG_URL).database}_anchors"
    with psycopg.connect(_conninfo("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


@pytest.fixture(params=["file", "sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An anchor log: a file, another SQLite file, another PostgreSQL database."""
    if request.param == "file":
        yield str(tmp_path / "anchors" / "ledger.jsonl")
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'anchors' / 'anchors.db'}"
    else:
        database = _anchor_database()
        url = make_url(PG_URL).set(database=database).render_as_string(hide_password=False)
        schema = f"a_{uuid.uuid4().hex[:16]}"
        yield f"{url}?schema={schema}"
        with psycopg.connect(_conninfo(database), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def _read(target: str) -> list[Anchor]:
    log = FileAnchorLog(target) if "://" not in target else DatabaseAnchorLog(target)
    try:
        return log.read()
    finally:
        log.close()


def _head(cli: Cli) -> tuple[int, str]:
    """The log's last position and head digest, as `verify` prints them."""
    code, out, err = cli("verify")
    assert code == 0, out + err
    found = re.search(r"verify: log head ([0-9a-f]{64}) at position (\d+)", out)
    assert found is not None, out
    return int(found.group(2)), found.group(1)


# --- anchor ---------------------------------------------------------------------------


def test_anchor_appends_the_logs_position_and_head_to_a_file_or_another_database(
        cli: Cli, ledger: Ledger, target: str, tmp_path: Path) -> None:
    (tmp_path / "anchors").mkdir()
    assert _read(target) == []
    code, out, err = cli("anchor", "--to", target)
    assert code == 0, err
    position, head = _head(cli)
    assert position == _end(ledger)
    name = re.sub(r"//([^:@/]*):[^@]*@", r"//\1:***@", target)
    assert out == f"anchor: position {position}, head {head}, appended to {name}\n"
    _returns(ledger, "D1")
    code, out, err = cli("anchor", "--to", target)
    assert code == 0, err
    later, last = _head(cli)
    anchors = _read(target)
    assert [(a.position, a.head.hex()) for a in anchors] == [(position, head), (later, last)]
    before = datetime.now(UTC).replace(microsecond=0)
    assert all(a.at.tzinfo is UTC and before - timedelta(minutes=5) <= a.at <= before
               for a in anchors)
    if "://" not in target:  # a line a person reads
        first = (tmp_path / "anchors" / "ledger.jsonl").read_text().splitlines()[0]
        assert json.loads(first) == {"position": position, "head": head,
                                     "at": anchors[0].at.strftime("%Y-%m-%dT%H:%M:%SZ")}
    code, out, err = cli("verify", "--anchors", target)
    assert code == 0, out + err
    assert f"verify: 2 anchors of {name} hold (the last at position {later}, " in out


def test_anchor_takes_its_target_from_the_environment_and_says_when_there_is_none(
        cli: Cli, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = cli("anchor")
    assert code == 2 and out == ""
    assert "no anchor log: give --to TARGET or set $AFTERSALES_ANCHOR" in err
    path = tmp_path / "a.jsonl"
    monkeypatch.setenv("AFTERSALES_ANCHOR", str(path))
    code, out, err = cli("anchor")
    assert code == 0, err
    assert len(_read(str(path))) == 1
    code, out, err = cli("verify")  # the same variable: verify checks the anchors
    assert code == 0 and "verify: 1 anchor of " in out and " holds (the last at " in out


def test_an_empty_ledger_is_not_anchored(db_url: str, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    Ledger(db_url).close()  # the tables, no events
    path = tmp_path / "a.jsonl"
    assert main(["anchor", "--to", str(path), "--db", db_url]) == 0
    assert "holds no events yet: nothing to anchor, nothing appended" in capsys.readouterr().out
    assert not path.exists()


def test_the_anchor_line_to_standard_output_is_checked_from_standard_input(
        cli: Cli, ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = cli("anchor", "--to", "-")
    assert code == 0, err
    [anchor] = parse_anchors(out.splitlines(), "standard output")
    assert anchor.position == _end(ledger)
    assert f"anchor: position {anchor.position}, head {anchor.head.hex()}, written to " \
           "standard output" in err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(out.encode())))
    code, out, err = cli("verify", "--anchors", "-")
    assert code == 0, out + err
    assert "verify: 1 anchor of standard input holds" in out


def test_the_ledgers_own_database_is_refused_as_an_anchor_log(
        cli: Cli, ledger: Ledger, store: Store, db_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    own = [db_url]
    if db_url.startswith("sqlite:///"):
        own.append(db_url.removeprefix("sqlite:///"))  # the same file, as a path
        os.symlink(db_url.removeprefix("sqlite:///"), tmp_path / "other-name.db")
        own.append(f"sqlite:///{tmp_path / 'other-name.db'}")  # ... under another name
    else:
        own.append(db_url.split("?")[0] + "?schema=anchors_here")  # another schema of it
        own.append(db_url.split("?")[0].replace("127.0.0.1", "localhost"))
    for target in own:
        code, out, err = cli("anchor", "--to", target)
        assert code == 2 and out == "", target
        assert "is in the ledger's own database" in err and "Traceback" not in err
        monkeypatch.setenv("AFTERSALES_ANCHOR", target)
        code, out, err = cli("verify")  # refused before any work
        assert code == 2 and out == "" and "is in the ledger's own database" in err
        code, out, err = cli("tick", "--anchor-every", "10")
        assert code == 2 and out == "" and "is in the ledger's own database" in err
        monkeypatch.delenv("AFTERSALES_ANCHOR")
    with store.engine.connect() as conn:  # nothing created there
        found = conn.execute(text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'ledger_anchors'"
            if db_url.startswith("sqlite") else
            "SELECT count(*) FROM pg_tables WHERE tablename = 'ledger_anchors'")).scalar()
    assert found == 0
    for bad, said in (("memory:", "memory keeps nothing"),
                      ("mysql://x@y/z", "unknown kind"),
                      ("sqlite://relative.db", "expected sqlite:///PATH")):
        code, out, err = cli("anchor", "--to", bad)
        assert code == 2 and said in err, err


def test_a_malformed_anchor_line_is_reported_with_the_file_and_its_number(
        cli: Cli, ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    assert cli("anchor", "--to", str(path))[0] == 0
    good = path.read_text()
    for line, said in (
            ('{"position": "14603", "head": "00", "at": "2026-12-07T08:00:00Z"}',
             "position '14603' is not a position"),
            ('{"position": 3, "head": "3f9c", "at": "2026-12-07T08:00:00Z"}',
             "head '3f9c' is not a digest (64 hex digits)"),
            ('{"position": 3, "head": "' + "ab" * 32 + '", "at": "2026-12-07T08:00:00"}',
             "is not an ISO 8601 time with Z or an offset"),
            ('{"position": 3, "head": "', "not JSON"),
            ('[1, 2]', "not an anchor")):
        path.write_text(good + "\n" + line + "\n")  # line 3 (line 2 is blank)
        for command in (("verify", "--anchors", str(path)), ("anchor", "--to", str(path))):
            code, out, err = cli(*command)
            assert code == 2, (command, out, err)
            assert f"anchor log {path}, line 3: " in err and said in err, err
            assert "Traceback" not in err
    assert len(path.read_text().splitlines()) == 3  # nothing appended after a bad line


# --- verify against the anchors --------------------------------------------------------


def test_a_store_rewritten_with_every_digest_recomputed_fails_against_the_anchor_log(
        cli: Cli, ledger: Ledger, store: Store, target: str, tmp_path: Path) -> None:
    (tmp_path / "anchors").mkdir()
    assert cli("anchor", "--to", target)[0] == 0  # D0 only: before what is changed below
    early = _end(ledger)
    _returns(ledger, "D1", "D2")
    assert cli("anchor", "--to", target)[0] == 0
    code, out, err = cli("verify", "--anchors", target)
    assert code == 0 and "verify: 2 anchors of " in out, out + err
    # Someone with write access and this code: D1's refund made ten times larger, D1's
    # digests and head record recomputed, and every link of the log after it.
    row = refund_row(store, "D1")
    assert row.n > early
    store.run("UPDATE {events} SET state = :s WHERE {id} = :n",
              s=altered(bytes(row.state), b'"amount":5000', b'"amount":50000'), n=row.n)
    _recompute_order(store, "D1")
    _recompute_log(store)
    code, out, err = cli("verify")  # the chains alone hold again
    assert "verify: the chained record holds" in out and code in (0, 1), out + err
    code, out, err = cli("verify", "--anchors", target)
    assert code == 4, out + err
    assert "verify: the chained record holds" in out
    late = _read(target)[1]
    assert (f"verify: anchor of {late.when}: position {late.position} now has another "
            "link: the history up to it was rewritten") in out
    assert "1 of 2 anchors of " in err and "do not hold" in err
    assert f"it is unchanged up to position {early} (the anchor of " in err
    assert "Traceback" not in err


def _cut_the_end(store: Store, ledger: Ledger, events: int) -> str:
    """Remove the log's last `events` events (all of one order) and point the order's
    head record at the event now last, so that every chain holds: the order id."""
    with store.engine.connect() as conn:
        rows = list(conn.execute(text(
            f"SELECT {store.id} AS n, originator_id AS o, originator_version AS v "
            f"FROM {store.events} ORDER BY {store.id} DESC LIMIT :k"), {"k": events}))
    assert len({r.o for r in rows}) == 1
    oid, first = rows[0].o, min(r.v for r in rows)
    store.run("DELETE FROM {events} WHERE {id} >= :n", n=min(r.n for r in rows))
    with store.engine.connect() as conn:
        kept = list(conn.execute(text(
            f"SELECT originator_version AS v, topic, state FROM {store.events} "
            "WHERE originator_id = :o ORDER BY originator_version"), {"o": oid}))
    assert kept[-1].v == first - 1
    uid = uuid.UUID(str(oid)) if not isinstance(oid, uuid.UUID) else oid
    previous = b"\x00" * 32
    for r in kept:
        previous = digest(previous, id_bytes(uid), r.v, r.topic, bytes(r.state))
    store.run("UPDATE {heads} SET version = :v, event_digest = :d WHERE originator_id = :o",
              v=first - 1, d=previous, o=oid)
    return str(oid)


def test_events_removed_from_the_end_after_an_anchor_fail_against_it(
        cli: Cli, ledger: Ledger, store: Store, tmp_path: Path) -> None:
    _returns(ledger, "D1")
    path = str(tmp_path / "a.jsonl")
    assert cli("anchor", "--to", path)[0] == 0
    end = _end(ledger)
    oid = _cut_the_end(store, ledger, 2)  # D1's last request and its deadline
    assert uuid.UUID(str(oid)) == order_uuid("D1")
    code, out, err = cli("verify")
    assert "verify: the chained record holds" in out, out + err  # nothing else shows it
    code, out, err = cli("verify", "--anchors", path)
    assert code == 4, out + err
    assert (f"position {end - 2} but the anchor recorded position {end}: events were "
            "removed from its end") in out
    code, out, err = cli("anchor", "--to", path)  # nothing appended on a cut log
    assert code == 4 and "nothing was appended" in err
    assert "which the last walk of the log reached, was removed" in out  # its own walk
    assert len(_read(path)) == 1


# --- anchoring as they go ---------------------------------------------------------------


def test_tick_anchors_when_the_last_anchor_is_old_enough(
        cli: Cli, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.jsonl"
    code, out, err = cli("tick", "--anchor-every", "10")  # no anchor log: refused first
    assert code == 2 and out == "" and "no anchor log: give --anchor-to TARGET" in err
    code, out, err = cli("tick", "--anchor-to", str(path))
    assert code == 2 and out == "" and "--anchor-to is for --anchor-every" in err
    code, out, err = cli("tick", "--anchor-every", "10", "--anchor-to", str(path))
    assert code == 0, err
    assert out.startswith("swept ") and f"anchor: position {_end(ledger)}, head " in out
    code, out, err = cli("tick", "--anchor-every", "10", "--anchor-to", str(path))
    assert code == 0, err
    assert "is less than 10 minutes old: none appended" in out
    assert len(_read(str(path))) == 1
    # An anchor 11 minutes old (the file's own, dated back): the next tick anchors again.
    [anchor] = _read(str(path))
    path.write_text(Anchor(anchor.position, anchor.head,
                           anchor.at - timedelta(minutes=11)).line() + "\n")
    _returns(ledger, "D1")
    monkeypatch.setenv("AFTERSALES_ANCHOR", str(path))
    code, out, err = cli("tick", "--anchor-every", "10")
    assert code == 0, err
    assert [a.position for a in _read(str(path))] == [anchor.position, _end(ledger)]


@pytest.mark.slow
def test_project_follow_anchors_on_its_own_timer(ledger: Ledger, db_url: str,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    refused = subprocess.run(
        [sys.executable, "-m", "aftersales", "project", "--anchor-every", "1", "--anchor-to",
         str(path), "--db", db_url], capture_output=True, text=True, timeout=PATIENCE)
    assert refused.returncode == 2 and "is for `project --follow`" in refused.stderr
    # Every 0.6 s: anchors appended at start (the log has none) and again on its timer.
    proc = subprocess.Popen(
        [sys.executable, "-m", "aftersales", "project", "--follow", "--poll", "0.05",
         "--anchor-every", "0.01", "--anchor-to", str(path), "--db", db_url],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + PATIENCE
        found: list[Anchor] = []
        while len(found) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"no second anchor within {PATIENCE:.0f} s"
            time.sleep(0.02)
            found = _read(str(path)) if path.exists() else []
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=PATIENCE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=PATIENCE)
    assert proc.returncode == 0, err
    end = _end(ledger)
    assert {a.position for a in found} == {end}
    assert f"anchor: position {end}, head {found[0].head.hex()}, appended to {path}" in out
    logged = [json.loads(line) for line in err.splitlines()]
    assert [x["position"] for x in logged if x["event"] == "anchored"][:2] == [end, end]


def test_a_role_that_may_only_insert_and_select_appends_anchors_and_changes_none(
        cli: Cli, ledger: Ledger, tmp_path: Path) -> None:
    """docs/operations.md's set-up: the table created once by its owner; the ledger's
    hosts append as a role with INSERT and SELECT on it, nothing more."""
    database = _anchor_database()
    owner = make_url(PG_URL).set(database=database)
    schema, role = f"a_{uuid.uuid4().hex[:16]}", f"anchorer_{uuid.uuid4().hex[:8]}"
    as_owner = f"{owner.render_as_string(hide_password=False)}?schema={schema}"
    as_role = f"{owner.set(username=role).render_as_string(hide_password=False)}?schema={schema}"
    try:
        assert cli("anchor", "--to", as_owner)[0] == 0  # creates the schema and the table
        first = _end(ledger)
        with psycopg.connect(_conninfo(database), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(role)))
            conn.execute(sql.SQL("GRANT SELECT, INSERT ON {}.ledger_anchors TO {}").format(
                sql.Identifier(schema), sql.Identifier(role)))
        _returns(ledger, "D1")
        code, out, err = cli("anchor", "--to", as_role)
        assert code == 0, err
        assert [a.position for a in _read(as_role)] == [first, _end(ledger)]
        code, out, err = cli("verify", "--anchors", as_role)
        assert code == 0 and "verify: 2 anchors of " in out, out + err
        with psycopg.connect(_conninfo(database), user=role) as conn, \
                pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("UPDATE {}.ledger_anchors SET position = 1").format(
                sql.Identifier(schema)))
    finally:
        with psycopg.connect(_conninfo(database), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
