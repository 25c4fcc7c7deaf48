"""`aftersales serve-webhook` as a real process on 127.0.0.1: the event-sign check (good,
wrong, missing), nothing acknowledged lost when the server is killed (SIGKILL) between the
answer and the ledger, every push of a bounded load answered, kept in the store's inbox and
applied, and an earlier version's spool file moved into the inbox."""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aftersales import Ledger
from tests.douyin_bodies import HOUR, aftersale, body, place, shipped
from tests.douyin_bodies import paid as paid_message
from tests.webhook_server import NOW, WAIT, paid, payments, placed, received, server

pytestmark = pytest.mark.slow


def test_a_push_is_accepted_only_with_its_event_sign(tmp_path: Path, db_url: str) -> None:
    placed(db_url, 1)
    with server(tmp_path, db_url, "--lateness", "0") as s:
        assert s.post(paid(0), sign=None) == (401, {"code": 40041, "msg":
                                                    "missing or wrong event-sign"})
        assert s.post(paid(0), sign="0" * 32)[0] == 401
        assert s.post(b"not json")[0] == 400
        assert s.post(paid(0)) == (200, {"code": 0, "msg": "success"})
        s.expect("ack applied 1")
    assert received(db_url) == 1  # only the signed one
    assert payments(db_url) == 1


def test_what_was_acknowledged_survives_a_kill_before_the_ledger(tmp_path: Path,
                                                                db_url: str) -> None:
    placed(db_url, 5)
    # A window of a day: the pushes are answered and kept, but held, not yet applied.
    with server(tmp_path, db_url, "--lateness", "86400") as s:
        for n in range(5):
            assert s.post(paid(n))[0] == 200
        s.process.send_signal(signal.SIGKILL)
        s.process.wait(timeout=WAIT)
    assert payments(db_url) == 0  # killed between the answer and the ledger
    with server(tmp_path, db_url, "--lateness", "0") as s:  # the next start applies them
        s.expect("ack applied 5")
        s.process.send_signal(signal.SIGTERM)
        s.expect("stopped")
    assert payments(db_url) == 5
    with server(tmp_path, db_url, "--lateness", "0") as s:  # and a third applies nothing
        assert s.post(paid(0))[0] == 200  # delivered again: the same row, applied once
        assert s.expect("ack received ") == "ack received 1"
        assert s.post(paid(5))[0] == 200
        s.expect("ack applied 6")
    assert payments(db_url) == 5 and received(db_url) == 6


def test_a_bounded_load_is_answered_kept_and_applied(tmp_path: Path, db_url: str) -> None:
    bodies = 120
    placed(db_url, bodies)
    with server(tmp_path, db_url, "--lateness", "0") as s:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda n: s.post(paid(n)), range(bodies)))
        assert [status for status, _ in answers] == [200] * bodies
        s.expect(f"ack applied {bodies}")
        s.process.send_signal(signal.SIGTERM)
        s.expect("stopped")
        assert s.process.wait(timeout=WAIT) == 0
    assert payments(db_url) == bodies
    ledger = Ledger(db_url)
    try:
        stats = ledger.index.inbox_stats()
        assert (stats.received, stats.applied, stats.backlog) == (bodies, bodies, 0)
    finally:
        ledger.close()


def test_a_spool_file_of_an_earlier_version_is_moved_into_the_inbox(
        tmp_path: Path, db_url: str) -> None:
    """Its bodies are applied (those applied before change nothing); a torn last line,
    never answered success, is left out; the file is kept as `.migrated`."""
    placed(db_url, 3)
    spool = tmp_path / "spool"
    lines = [b'{"received_at":"' + NOW.isoformat().encode() + b'","body":' + paid(n) + b"}"
             for n in range(2)]
    spool.write_bytes(b"\n".join(lines) + b"\n" + lines[0][:20])
    (tmp_path / "spool.applied").write_text("1\n")
    with server(tmp_path, db_url, "--lateness", "0") as s:
        s.expect("ack applied 2")
        assert s.post(paid(2)) == (200, {"code": 0, "msg": "success"})
        assert s.expect("ack received ") == "ack received 3"
        s.expect("ack applied 3")
        request = urllib.request.Request(s.url, data=b"[]", headers={
            "event-sign": "\u00e9" * 32, "Content-Length": "2"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=WAIT)
        assert refused.value.code == 401
        refused.value.close()
    assert not spool.exists() and (tmp_path / "spool.migrated").read_bytes().startswith(
        lines[0])
    assert (tmp_path / "spool.applied.migrated").exists()
    assert payments(db_url) == 3 and received(db_url) == 3


def test_a_timeless_message_is_applied_at_the_time_its_body_was_received(
        tmp_path: Path, db_url: str) -> None:
    from aftersales.feeds.run import ingest_feed
    ledger = Ledger(db_url)
    try:  # a refund refused three hours ago: the user may appeal
        ingest_feed(ledger, [
            place("W0", at=NOW - 6 * HOUR), body(paid_message("p", "W0", at=NOW - 5 * HOUR)),
            body(shipped("s", "W0", at=NOW - 4 * HOUR)),
            body(aftersale(200, "r", NOW - 3 * HOUR, order="W0", case=1, kind=1,
                           refund_amount=1000)),
            body(aftersale(204, "n", NOW - 2 * HOUR, order="W0", case=1, kind=1,
                           refuse_reason="used"))])
    finally:
        ledger.close()
    with server(tmp_path, db_url, "--lateness", "0") as s:
        before = datetime.now(UTC).replace(microsecond=0)
        appeal = body(aftersale(212, "appeal", None, order="W0", case=1, kind=1))
        assert s.post(appeal)[0] == 200  # 212 carries no time
        s.expect("ack applied 1")
        after = datetime.now(UTC)
    ledger = Ledger(db_url)
    try:
        appealed = list(ledger.order_events("W0"))[-1]
        assert type(appealed).__name__ == "Appealed" and before <= appealed.at <= after
    finally:
        ledger.close()


@pytest.mark.parametrize("poison", [
    {"tag": "\u00b2", "msg_id": "p1", "data": {}},
    {"tag": 101, "msg_id": "p2", "data": "[" * 1000 + "]" * 1000},
    {"tag": 101, "msg_id": "p3", "data": '{"s_ids":[1],"pay_time":' + "9" * 4301 + "}"},
    {"tag": 101, "msgId": "p4", "data": {"s_ids": ["W1"], "pay_type": 1, "pay_time": 1e999}},
    {"tag": 101, "msgId": "p5", "data": {"s_ids": ["W1"], "pay_type": 1,
                                         "pay_time": 1794002561, "note": "\ud800"}},
])
def test_a_poison_body_is_refused_message_by_message_and_the_server_goes_on(
        tmp_path: Path, db_url: str, poison: dict[str, object]) -> None:
    placed(db_url, 2)
    with server(tmp_path, db_url, "--lateness", "0") as s:
        mixed = json.dumps([poison, json.loads(paid(0))[0]]).encode()
        assert s.post(mixed) == (200, {"code": 0, "msg": "success"})
        s.expect("ack applied 1")
        assert s.post(paid(1))[0] == 200  # still serving, still applying
        s.expect("ack applied 2")
        s.process.send_signal(signal.SIGTERM)
        s.expect("stopped")
        assert s.process.wait(timeout=WAIT) == 0
    assert payments(db_url) == 2


def test_a_large_acknowledged_body_is_applied_whole(tmp_path: Path, db_url: str) -> None:
    """A body of 180 messages (about 40 KB, over a command file's line limit) answered
    success is applied, every message of it."""
    placed(db_url, 180)
    large = json.dumps([json.loads(paid(n))[0] for n in range(180)]).encode()
    assert len(large) > 16 * 1024
    with server(tmp_path, db_url, "--lateness", "0") as s:
        assert s.post(large) == (200, {"code": 0, "msg": "success"})
        s.expect("ack applied 1")
    assert payments(db_url) == 180
