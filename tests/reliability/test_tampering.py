"""Tampering with the stored events (SPEC section 11, invariant I11): a changed byte, a
removed, inserted or reordered event is detected on every load and by `verify`, which
names the order and the position; a broken order is refused (INTEGRITY) while the others
keep working; the read models record it instead of failing for everyone; a rebuild never
adopts it; a history rewritten with every digest recomputed is caught by the head digest
kept elsewhere; a store written before the chained record is upgraded without loss."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from aftersales import Ledger
from aftersales.domain.order import order_uuid
from aftersales.errors import IntegrityBroken
from aftersales.storage.chain import ZERO, link
from projections.database import ReadModels
from projections.schema import integrity_breaks, order_status
from tests.faults import Store
from tests.faults import recompute_order as _recompute_order
from tests.reliability.snapshot import run_cli, snapshot
from tests.scenario import DAY, HOUR, refunded_returns

pytestmark = pytest.mark.slow


@pytest.fixture
def store(db_url: str) -> Iterator[tuple[Ledger, Store]]:
    """Two orders with a case each: D1 (to be tampered with) and D2."""
    ledger = Ledger(db_url)
    refunded_returns(ledger, "D1", "D2")
    db = Store(db_url)
    yield ledger, db
    db.close()
    ledger.close()


def altered(state: bytes, old: bytes, new: bytes) -> bytes:
    assert old in state
    return state.replace(old, new, 1)


def refund_row(store: Store, order_id: str) -> Any:
    return next(r for r in store.rows(order_id) if b'"amount":5000' in bytes(r.state)
                and b"R-ON-4" in bytes(r.state))


def test_a_changed_byte_is_refused_on_load_and_other_orders_keep_working(
        store: tuple[Ledger, Store]) -> None:
    from aftersales import CommandRefused
    from aftersales.application import commands as cmd

    ledger, db = store
    row = refund_row(db, "D1")
    db.run("UPDATE {events} SET state = :s WHERE {id} = :n",
           s=altered(bytes(row.state), b'"amount":5000', b'"amount":50000'), n=row.n)
    fresh = Ledger(ledger.url)
    with pytest.raises(IntegrityBroken) as broken:
        fresh.get_order("D1")  # the refund larger than the goods is never answered
    assert broken.value.broken.version == row.v
    assert f"order D1: its recorded history is broken at version {row.v}" in str(broken.value)
    with pytest.raises(IntegrityBroken):
        list(fresh.order_events("D1"))
    other = fresh.get_order("D2")
    assert other is not None
    with pytest.raises(IntegrityBroken):
        fresh.order_as_of("D1", other.placed_at)
    # A command for it is refused INTEGRITY, one for another order is applied, alone and
    # in a group commit; a sweep skips it and sweeps the others.
    later = other.last_at + HOUR
    with pytest.raises(CommandRefused) as refused:
        fresh.execute(cmd.build(cmd.ApproveReturn, {"order_id": "D1", "at": later}))
    assert refused.value.code == "INTEGRITY"
    results = fresh.execute_batch([
        cmd.build(cmd.ApproveReturn, {"order_id": "D1", "at": later}),
        cmd.build(cmd.ApproveReturn, {"order_id": "D2", "at": later})])
    assert [getattr(r, "code", None) for r in results] == ["INTEGRITY", None]
    assert fresh.tick(later + 30 * DAY) >= 1  # D2's tracking deadline passes
    assert order_uuid("D1") in fresh.broken
    fresh.close()


@pytest.mark.parametrize("tamper", ["remove the last", "remove a middle", "insert",
                                    "reorder", "recompute every digest"])
def test_removal_insertion_and_reordering_are_detected(
        store: tuple[Ledger, Store], tamper: str) -> None:
    ledger, db = store
    rows = db.rows("D1")
    last, middle = rows[-1], rows[len(rows) // 2]
    if tamper == "remove the last":
        db.run("DELETE FROM {events} WHERE {id} = :n", n=last.n)
        where = last.v
    elif tamper == "remove a middle":
        db.run("DELETE FROM {events} WHERE {id} = :n", n=middle.n)
        where = middle.v
    elif tamper == "insert":
        db.run("UPDATE {events} SET originator_version = originator_version + 1 "
               "WHERE {id} = :n", n=last.n)  # a gap where an event was "inserted"
        where = last.v
    elif tamper == "reorder":
        a, b = rows[1], rows[2]
        db.run("UPDATE {events} SET state = :s WHERE {id} = :n", s=bytes(b.state), n=a.n)
        db.run("UPDATE {events} SET state = :s WHERE {id} = :n", s=bytes(a.state), n=b.n)
        where = a.v
    else:  # change the refund and recompute the order's digests and its head, as an
        row = refund_row(db, "D1")  # attacker with write access and this code would
        db.run("UPDATE {events} SET state = :s WHERE {id} = :n",
               s=altered(bytes(row.state), b'"amount":5000', b'"amount":50000'), n=row.n)
        _recompute_order(db, "D1")
        where = row.v
    fresh = Ledger(ledger.url)
    check = run_cli("verify", "--db", ledger.url, cwd=Path("."))
    if tamper == "recompute every digest":  # the order chain holds again: the load sees
        with pytest.raises(IntegrityBroken) as broken:  # the log link beside the event
            fresh.get_order("D1")
        assert broken.value.broken.version == where
        assert "does not follow the link it records before it" in str(broken.value)
        assert fresh.get_order("D2") is not None
        assert check.returncode == 4
        assert "verify: log position" in check.stdout
        assert "rewritten with its order's digests recomputed" in check.stdout
    else:
        with pytest.raises(IntegrityBroken) as broken:
            fresh.get_order("D1")
        assert broken.value.broken.version == where
        assert check.returncode == 4, check.stdout + check.stderr
        assert re.search(rf"verify: order D1: its history is broken at version {where}: ",
                         check.stdout), check.stdout
        assert "D2" not in check.stdout
    assert "verify: log head " in check.stdout
    fresh.close()


def test_verify_head_catches_a_history_rewritten_with_every_digest_recomputed(
        store: tuple[Ledger, Store], tmp_path: Path) -> None:
    ledger, db = store
    first = run_cli("verify", "--db", ledger.url, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    kept = re.search(r"log head ([0-9a-f]{64})", first.stdout)
    assert kept is not None
    assert run_cli("verify", "--head", kept.group(1), "--db", ledger.url,
                   cwd=tmp_path).returncode == 0
    row = refund_row(db, "D1")
    db.run("UPDATE {events} SET state = :s WHERE {id} = :n",
           s=altered(bytes(row.state), b'"amount":5000', b'"amount":50000'), n=row.n)
    _recompute_order(db, "D1")
    _recompute_log(db)  # every link after it too: the chains hold again
    again = run_cli("verify", "--db", ledger.url, cwd=tmp_path)
    assert "verify: the chained record holds" in again.stdout  # the chains show nothing
    assert again.returncode == 1  # (only the read models, projected before, differ)...
    caught = run_cli("verify", "--head", kept.group(1), "--db", ledger.url, cwd=tmp_path)
    assert caught.returncode == 4  # ...but the digest kept elsewhere does
    assert "the digest kept is not in the log" in caught.stderr


def _recompute_log(db: Store) -> None:
    current = ZERO
    with db.engine.connect() as conn:
        rows = list(conn.execute(text(
            f"SELECT {db.id} AS n, event_digest FROM {db.events} ORDER BY {db.id}")))
    for r in rows:  # each link, and the link each next event records before it
        before, current = current, link(current, bytes(r.event_digest))
        db.run("UPDATE {events} SET log_link = :l, prev_link = :p WHERE {id} = :n",
               l=current, p=before, n=r.n)


def test_the_command_line_refuses_a_broken_order_and_reporting_goes_on(
        store: tuple[Ledger, Store], tmp_path: Path) -> None:
    ledger, db = store
    url = ledger.url
    assert run_cli("project", "--db", url, cwd=tmp_path).returncode == 0
    row = refund_row(db, "D1")
    db.run("UPDATE {events} SET state = :s WHERE {id} = :n",
           s=altered(bytes(row.state), b'"amount":5000', b'"amount":50000'), n=row.n)
    status = run_cli("status", "D1", "--db", url, cwd=tmp_path)
    assert status.returncode == 4 and "INTEGRITY" not in status.stdout
    assert f"order D1: its recorded history is broken at version {row.v}" in status.stderr
    assert run_cli("history", "D1", "--db", url, cwd=tmp_path).returncode == 4
    assert run_cli("status", "D2", "--db", url, cwd=tmp_path).returncode == 0
    later = (ledger.get_order("D2").last_at + HOUR).isoformat()  # type: ignore[union-attr]
    lines = "\n".join(json.dumps({"command": "approve_return", "order_id": o, "at": later})
                      for o in ("D1", "D2")) + "\n"
    ingest = run_cli("ingest", "-", "--db", url, cwd=tmp_path, stdin=lines)
    assert ingest.returncode == 4
    assert "line 1: INTEGRITY: order D1: its recorded history is broken" in ingest.stderr
    assert "1 applied" in ingest.stdout
    # The read models: a rebuild records the break and never adopts the altered refund.
    rebuilt = run_cli("rebuild", "--db", url, cwd=tmp_path)
    assert rebuilt.returncode == 4 and "broken history" in rebuilt.stderr
    views = ReadModels(url)
    with views.engine.connect() as conn:
        breaks = [dict(r) for r in conn.execute(select(integrity_breaks)).mappings()]
        d1 = conn.execute(select(order_status).where(order_status.c.order_id == "D1")
                          ).mappings().one()
    views.close()
    assert [(b["order_id"], b["version"]) for b in breaks] == [("D1", row.v)]
    assert d1["history_broken"] and d1["refunded_total_fen"] == 0  # up to the break only
    report = run_cli("report", "--db", url, cwd=tmp_path)
    assert report.returncode == 4 and "M1" in report.stdout
    assert "broken history" in report.stderr and "Traceback" not in report.stderr
    verify = run_cli("verify", "--db", url, cwd=tmp_path)
    assert verify.returncode == 4
    assert f"verify: order D1: its history is broken at version {row.v}" in verify.stdout


def test_an_unreadable_event_is_a_break_not_a_crash(store: tuple[Ledger, Store],
                                                    tmp_path: Path) -> None:
    """An event whose bytes match its digest but that this version cannot read (here: a
    byte changed and its digests recomputed to match)."""
    ledger, db = store
    row = db.rows("D1")[2]
    db.run("UPDATE {events} SET state = :s WHERE {id} = :n", s=b"{not json", n=row.n)
    _recompute_order(db, "D1")
    _recompute_log(db)
    fresh = Ledger(ledger.url)
    with pytest.raises(IntegrityBroken, match="cannot be read"):
        fresh.get_order("D1")
    fresh.close()
    assert run_cli("rebuild", "--db", ledger.url, cwd=tmp_path).returncode == 4
    report = run_cli("report", "--db", ledger.url, cwd=tmp_path)
    assert report.returncode == 4 and "Traceback" not in report.stderr


@pytest.mark.parametrize("written", ["before the chain", "before the predecessors"])
def test_a_store_written_by_an_earlier_version_is_upgraded_without_loss(
        store: tuple[Ledger, Store], tmp_path: Path, written: str) -> None:
    ledger, db = store
    url = ledger.url
    assert run_cli("project", "--db", url, cwd=tmp_path).returncode == 0
    before = snapshot(url)
    states = {r.n: hashlib.sha256(bytes(r.state)).hexdigest() for o in ("D1", "D2")
              for r in db.rows(o)}
    digests = {r.n: bytes(r.event_digest) for o in ("D1", "D2") for r in db.rows(o)}
    # What an earlier version wrote: no predecessors (and, before the chain, no digests,
    # no links, no head records).
    db.run("ALTER TABLE {events} DROP COLUMN prev_id")
    db.run("ALTER TABLE {events} DROP COLUMN prev_version")
    db.run("ALTER TABLE {events} DROP COLUMN prev_link")
    if written == "before the chain":
        db.run("ALTER TABLE {events} DROP COLUMN event_digest")
        db.run("ALTER TABLE {events} DROP COLUMN log_link")
        db.run("DROP TABLE {heads}")
    old = run_cli("status", "D1", "--db", url, cwd=tmp_path)
    assert old.returncode == 2 and "run `aftersales db upgrade` once" in old.stderr
    upgraded = run_cli("db", "upgrade", "--db", url, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded: " in upgraded.stdout and "log head " in upgraded.stdout
    assert run_cli("db", "upgrade", "--db", url, cwd=tmp_path).stdout.endswith(
        "nothing to do\n")
    assert {r.n: hashlib.sha256(bytes(r.state)).hexdigest() for o in ("D1", "D2")
            for r in db.rows(o)} == states  # not a byte of an event changed
    assert {r.n: bytes(r.event_digest) for o in ("D1", "D2")
            for r in db.rows(o)} == digests  # and the same digests
    assert run_cli("verify", "--db", url, cwd=tmp_path).returncode == 0
    assert snapshot(url) == before


@pytest.mark.parametrize("where", ["a middle event", "the log's last event"])
def test_db_upgrade_never_launders_a_removed_link(store: tuple[Ledger, Store],
                                                   tmp_path: Path, where: str) -> None:
    """Issue 24, 3: a NULLed log link in a chained store is a break, not an old store: the
    order is refused INTEGRITY (not sent to `db upgrade`), and `db upgrade` computes
    nothing for it."""
    ledger, db = store
    url = ledger.url
    rows = db.rows("D1") if where == "a middle event" else db.rows("D2")
    row = rows[len(rows) // 2] if where == "a middle event" else rows[-1]
    db.run("UPDATE {events} SET log_link = NULL WHERE {id} = :n", n=row.n)
    order = "D1" if where == "a middle event" else "D2"
    asked = run_cli("status", order, "--db", url, cwd=tmp_path)
    assert asked.returncode == 4, asked.stdout + asked.stderr
    assert "no log link" in asked.stderr and "db upgrade" not in asked.stderr
    upgrade = run_cli("db", "upgrade", "--db", url, cwd=tmp_path)
    assert upgrade.returncode == 4 and "does not compute them" in upgrade.stderr
    assert next(r for r in db.rows(order) if r.n == row.n).log_link is None  # untouched
    checked = run_cli("verify", "--db", url, cwd=tmp_path)
    assert checked.returncode == 4 and "no digest or log link" in checked.stdout
    other = "D2" if order == "D1" else "D1"
    assert run_cli("status", other, "--db", url, cwd=tmp_path).returncode == 0
    applied = run_cli("ingest", "-", "--db", url, cwd=tmp_path, stdin=json.dumps({
        "command": "approve_return", "order_id": other, "at": "2026-03-06T10:00:00+08:00"})
        + "\n")
    if where == "a middle event":  # the log goes on: the other orders are written
        assert applied.returncode == 0, applied.stderr
    else:  # nothing can be chained after a log end without a link: said, not a traceback
        assert applied.returncode == 4 and "has no log link" in applied.stderr
        assert "Traceback" not in applied.stderr
