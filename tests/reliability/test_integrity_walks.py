"""Trust, second pass (issue 24; SPEC section 11, invariant I11): no query or command answers
from a truncated or re-digested history, and a rebuild never adopts one.

As someone with write access to the database would, on SQLite and PostgreSQL:
- an order's last event removed and its head record set back (the only trace: the next
  event in the log names the removed one as its predecessor): the walks of the log (`tick`,
  `verify`, `rebuild`) name the order and record the break; from then on it is refused
  everywhere, and no voucher timeout is swept for the voucher the merchant did upload;
- an event rewritten with its order's digests and head record recomputed: refused on load
  (its log link no longer follows), and if its link is recomputed too, the next event's
  does not follow it;
- `verify --head` never says "unchanged" of a broken record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from aftersales import Ledger
from aftersales.cli.edge import failure
from aftersales.errors import EXIT_INTERRUPTED, IntegrityBroken, RebuildInterrupted
from aftersales.storage.chain import ZERO, link
from projections.database import ReadModels
from projections.schema import integrity_breaks
from tests.faults import Store, recompute_order
from tests.reliability.snapshot import run_cli
from tests.reliability.test_tampering import altered, refund_row
from tests.scenario import DAY, GOODS, HOUR, T0, Scenario

pytestmark = pytest.mark.slow


@pytest.fixture
def store(db_url: str) -> Iterator[tuple[Ledger, Store]]:
    """C1: a cod return whose merchant uploaded the voucher (its last event); D1: an online
    return refunded by the platform; D2, placed after both, so that the log goes on."""
    ledger = Ledger(db_url)
    cod = Scenario(ledger, "cod", order_id="C1").to_received()
    cod.do("upload_refund_voucher", 2 * HOUR, voucher_ref="V-1", amount=GOODS)
    online = Scenario(ledger, "online", order_id="D1")
    online.to_delivered()
    online.do("request_return", DAY, reason="half", amount=5000)
    online.do("approve_return")
    online.do("submit_tracking", carrier="YTO", tracking_no="YT1")
    online.do("confirm_receipt", DAY)
    Scenario(ledger, "online", order_id="D2").to_delivered()
    db = Store(db_url)
    yield ledger, db
    db.close()
    ledger.close()


def _truncate(db: Store, order_id: str) -> int:
    """Remove the order's last event and set its head record back to the one before (as
    an attacker with write access would); the version removed."""
    rows = db.rows(order_id)
    db.run("DELETE FROM {events} WHERE {id} = :n", n=rows[-1].n)
    db.set_head(order_id, rows[-2].v, bytes(rows[-2].event_digest))
    return int(rows[-1].v)


def _events(db: Store, order_id: str) -> int:
    return len(db.rows(order_id))


def _breaks(url: str, tmp_path: Path) -> dict[str, Any]:
    views = ReadModels(f"sqlite:///{tmp_path / 'views.db'}")
    try:
        with views.engine.connect() as conn:
            return {r.order_id: r for r in conn.execute(select(integrity_breaks))}
    finally:
        views.close()


def test_a_truncation_with_the_head_rewritten_is_named_by_the_sweep_and_refused_after(
        store: tuple[Ledger, Store], tmp_path: Path) -> None:
    ledger, db = store
    url = ledger.url
    removed = _truncate(db, "C1")
    before = _events(db, "C1")
    late = (T0 + 30 * DAY).isoformat()  # long after the voucher deadline
    swept = run_cli("tick", "--now", late, "--db", url, "--no-project", cwd=tmp_path)
    assert swept.returncode == 4, swept.stdout + swept.stderr
    assert "the log chain breaks" in swept.stderr and "order C1" in swept.stderr
    assert _events(db, "C1") == before  # no AdvanceCompensationPaid, no MerchantPenalized
    for asked in (run_cli("status", "C1", "--db", url, cwd=tmp_path),
                  run_cli("history", "C1", "--db", url, cwd=tmp_path),
                  run_cli("status", "C1", "--as-of", late, "--db", url, cwd=tmp_path)):
        assert asked.returncode == 4, asked.stdout + asked.stderr
        assert f"broken at version {removed}" in asked.stderr
        assert "was removed" in asked.stderr
    line = json.dumps({"command": "upload_refund_voucher", "order_id": "C1",
                       "at": late, "voucher_ref": "V-2", "amount": GOODS})
    refused = run_cli("ingest", "-", "--db", url, cwd=tmp_path, stdin=line + "\n")
    assert refused.returncode == 4 and "line 1: INTEGRITY" in refused.stderr
    assert _events(db, "C1") == before
    assert run_cli("status", "D2", "--db", url, cwd=tmp_path).returncode == 0  # the others
    assert run_cli("status", "D1", "--db", url, cwd=tmp_path).returncode == 0  # work
    checked = run_cli("verify", "--db", url, cwd=tmp_path)
    assert checked.returncode == 4
    assert re.search(r"refused from now on: order C1 \(from version \d+\)", checked.stdout)


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("first", ["rebuild", "verify"])
def test_rebuild_never_adopts_a_truncated_history(store: tuple[Ledger, Store],
                                                  tmp_path: Path, first: str,
                                                  workers: str) -> None:
    """With two processes the walk runs beside the other's replay, which started on the
    breaks recorded before: a break it finds first (`first` rebuild) redoes the rebuild."""
    ledger, db = store
    url = ledger.url
    views = f"sqlite:///{tmp_path / 'views.db'}"
    removed = _truncate(db, "C1")
    if first == "verify":
        assert run_cli("verify", "--db", url, "--views", views, cwd=tmp_path).returncode == 4
    rebuilt = run_cli("rebuild", "--db", url, "--views", views, "--workers", workers,
                      cwd=tmp_path)
    assert rebuilt.returncode == 4, rebuilt.stdout + rebuilt.stderr
    assert "C1" in rebuilt.stderr
    found = _breaks(url, tmp_path)
    assert set(found) == {"C1"} and found["C1"].version == removed
    assert run_cli("status", "C1", "--db", url, cwd=tmp_path).returncode == 4


@pytest.mark.parametrize("links", ["kept", "recomputed for the event"])
def test_an_event_rewritten_with_its_digests_recomputed_is_refused_on_load(
        store: tuple[Ledger, Store], tmp_path: Path, links: str) -> None:
    ledger, db = store
    url = ledger.url
    views = f"sqlite:///{tmp_path / 'views.db'}"
    row = refund_row(db, "D1")
    db.run("UPDATE {events} SET state = :s WHERE {id} = :n",
           s=altered(bytes(row.state), b'"amount":5000', b'"amount":50000'), n=row.n)
    recompute_order(db, "D1")
    if links != "kept":  # its own link follows the one before it again
        rows = {r.n: r for o in ("C1", "D1", "D2") for r in db.rows(o)}
        before = rows[max(n for n in rows if n < row.n)]
        mine = next(r for r in db.rows("D1") if r.n == row.n)
        db.run("UPDATE {events} SET log_link = :l WHERE {id} = :n",
               l=link(bytes(before.log_link) if before is not None else ZERO,
                      bytes(mine.event_digest)), n=row.n)
    fresh = Ledger(url)
    with pytest.raises(IntegrityBroken) as broken:
        fresh.get_order("D1")
    assert broken.value.broken.version in (row.v, row.v - 1, row.v + 1)
    fresh.close()
    shown = run_cli("status", "D1", "--db", url, cwd=tmp_path)
    assert shown.returncode == 4 and "500.00" not in shown.stdout
    assert run_cli("status", "C1", "--db", url, cwd=tmp_path).returncode == 0
    rebuilt = run_cli("rebuild", "--db", url, "--views", views, cwd=tmp_path)
    assert rebuilt.returncode == 4 and "D1" in _breaks(url, tmp_path)
    assert run_cli("verify", "--db", url, "--views", views, cwd=tmp_path).returncode == 4


def test_verify_head_never_calls_a_broken_record_unchanged(store: tuple[Ledger, Store],
                                                           tmp_path: Path) -> None:
    ledger, db = store
    first = run_cli("verify", "--db", ledger.url, cwd=tmp_path)
    kept = re.search(r"log head ([0-9a-f]{64})", first.stdout)
    assert kept is not None
    row = refund_row(db, "D1")  # bytes altered, digest not
    db.run("UPDATE {events} SET state = :s WHERE {id} = :n",
           s=altered(bytes(row.state), b'"amount":5000', b'"amount":50000'), n=row.n)
    again = run_cli("verify", "--head", kept.group(1), "--db", ledger.url, cwd=tmp_path)
    assert again.returncode == 4
    assert "unchanged" not in again.stdout + again.stderr
    assert "the history up to it was changed" in again.stderr


def test_an_interrupted_rebuild_exits_with_its_own_code() -> None:
    """Not 2 (a bad option): 5, run it again."""
    code, text = failure(RebuildInterrupted("the read models were replaced"))
    assert code == EXIT_INTERRUPTED == 5 and "replaced" in text


def test_anchor_walks_the_log_first_and_never_vouches_for_a_broken_one(
        store: tuple[Ledger, Store], tmp_path: Path) -> None:
    ledger, db = store
    target = tmp_path / "anchors.jsonl"
    _truncate(db, "C1")
    done = run_cli("anchor", "--to", str(target), "--db", ledger.url, cwd=tmp_path)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "the log chain breaks" in done.stdout and "nothing was appended" in done.stderr
    assert not target.exists() or target.read_text() == ""
    assert run_cli("status", "C1", "--db", ledger.url, cwd=tmp_path).returncode == 4
    assert run_cli("status", "D2", "--db", ledger.url, cwd=tmp_path).returncode == 0


def test_tick_names_an_order_whose_event_was_removed_from_the_logs_end_after_a_walk(
        store: tuple[Ledger, Store], tmp_path: Path) -> None:
    """No later event names an event removed from the log's end; the sweep's walk
    remembers the last event it reached, and says when that one is gone."""
    ledger, db = store
    url = ledger.url
    first = run_cli("tick", "--now", T0.isoformat(), "--db", url, "--no-project",
                    cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    _truncate(db, "D2")  # D2's last event is the log's last
    again = run_cli("tick", "--now", T0.isoformat(), "--db", url, "--no-project",
                    cwd=tmp_path)
    assert again.returncode == 4, again.stdout + again.stderr
    assert "which the last walk of the log reached, was removed" in again.stderr
    assert "refused from now on: order D2" in again.stderr
    assert run_cli("status", "D2", "--db", url, cwd=tmp_path).returncode == 4
    assert run_cli("status", "C1", "--db", url, cwd=tmp_path).returncode == 0
