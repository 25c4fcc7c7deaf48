"""`aftersales serve-webhook` as a real process on 127.0.0.1: the event-sign check (good,
wrong, missing), nothing acknowledged lost when the server is killed (SIGKILL) between the
answer and the ledger, and every push of a bounded load answered, spooled and applied."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aftersales import Ledger
from aftersales.application.commands import parse_command
from tests.douyin_bodies import HOUR, aftersale, body, place, shipped
from tests.douyin_bodies import paid as paid_message

pytestmark = pytest.mark.slow
KEY, SECRET = "app-key", "app-secret"
ENV = {"AFTERSALES_DOUYIN_APP_KEY": KEY, "AFTERSALES_DOUYIN_APP_SECRET": SECRET}
WAIT = 60.0  # the longest a test waits for a line of the server's (a bound, not a pause)


class Server:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        first = self.expect("listening on ")
        self.url = first.split()[2]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def expect(self, start: str) -> str:
        """The next line of the server's that is `start`, or starts so and goes on past a
        space (the lines before it skipped)."""
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no line {start!r} from the server") from None
            if line == start or line.startswith(start.rstrip() + " ") or (
                    start.endswith(" ") and line.startswith(start)):
                return line

    def post(self, body: bytes, sign: str | None = "good") -> tuple[int, dict[str, object]]:
        headers = {}
        if sign is not None:
            headers["event-sign"] = (hashlib.md5(KEY.encode() + body + SECRET.encode())
                                     .hexdigest() if sign == "good" else sign)
        request = urllib.request.Request(self.url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@contextmanager
def server(tmp_path: Path, db: str, *extra: str) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"} | ENV
    process = subprocess.Popen(
        [sys.executable, "-m", "aftersales", "--db", db, "serve-webhook", "--port", "0",
         "--spool", str(tmp_path / "spool"), "--ack", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    running: Server | None = None
    try:
        running = Server(process)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT)
        if running is not None:
            running.reader.join(timeout=WAIT)
        assert process.stdout is not None
        process.stdout.close()


#: A live feed's times: the orders placed two hours ago, paid an hour ago (the window
#: holds a message until the wall clock is `--lateness` past its business time).
NOW = datetime.now(UTC).replace(microsecond=0)


def placed(db: str, orders: int) -> None:
    ledger = Ledger(db)
    try:
        for n in range(orders):
            ledger.execute(parse_command(place(f"W{n}", at=NOW - 2 * HOUR)))
    finally:
        ledger.close()


def paid(n: int) -> bytes:
    return body(paid_message(f"pay-{n}", f"W{n}", at=NOW - HOUR))


def payments(db: str) -> int:
    ledger = Ledger(db)
    try:
        return sum(1 for e in ledger.all_events() if type(e).__name__ == "PaymentReceived")
    finally:
        ledger.close()


def test_a_push_is_accepted_only_with_its_event_sign(tmp_path: Path, db_url: str) -> None:
    placed(db_url, 1)
    with server(tmp_path, db_url, "--lateness", "0") as s:
        assert s.post(paid(0), sign=None) == (401, {"code": 40041, "msg":
                                                    "missing or wrong event-sign"})
        assert s.post(paid(0), sign="0" * 32)[0] == 401
        assert s.post(b"not json")[0] == 400
        assert s.post(paid(0)) == (200, {"code": 0, "msg": "success"})
        s.expect("ack applied 1")
    assert (tmp_path / "spool").read_text().count("\n") == 1  # only the signed one
    assert payments(db_url) == 1


def test_what_was_acknowledged_survives_a_kill_before_the_ledger(tmp_path: Path,
                                                                db_url: str) -> None:
    placed(db_url, 5)
    # A window of a day: the pushes are answered and spooled, but held, not yet applied.
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
        assert s.post(paid(0))[0] == 200  # delivered again: applied once
        s.expect("ack applied 6")
    assert payments(db_url) == 5


def test_a_bounded_load_is_answered_spooled_and_applied(tmp_path: Path,
                                                        db_url: str) -> None:
    bodies = 120
    placed(db_url, bodies)
    with server(tmp_path, db_url, "--lateness", "0") as s:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda n: s.post(paid(n)), range(bodies)))
        assert [status for status, _ in answers] == [200] * bodies
        s.expect(f"ack applied {bodies}")
        s.process.send_signal(signal.SIGTERM)
        s.expect("stopped")
    spooled = [json.loads(line) for line in (tmp_path / "spool").read_text().splitlines()]
    assert sorted(b["body"][0]["msg_id"] for b in spooled) == sorted(
        f"pay-{n}" for n in range(bodies))
    assert all(datetime.fromisoformat(b["received_at"]) >= NOW for b in spooled)
    assert payments(db_url) == bodies


def test_a_torn_last_line_of_the_spool_is_cut_and_bad_requests_are_refused(
        tmp_path: Path, db_url: str) -> None:
    placed(db_url, 2)
    spool = tmp_path / "spool"
    whole = json.dumps(json.loads(paid(0)), separators=(",", ":"))
    spool.write_text(whole + "\n" + whole[:20])  # stopped while writing an unanswered body
    with server(tmp_path, db_url, "--lateness", "0") as s:
        assert s.post(paid(1)) == (200, {"code": 0, "msg": "success"})
        assert s.expect("ack received ") == "ack received 2"
        s.expect("ack applied 2")
        request = urllib.request.Request(s.url, data=b"[]", headers={
            "event-sign": "\u00e9" * 32, "Content-Length": "2"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=WAIT)
        assert refused.value.code == 401
        refused.value.close()
    kept = [json.loads(x) for x in spool.read_text().splitlines()]
    assert [(x if isinstance(x, list) else x["body"])[0]["msg_id"] for x in kept] == [
        "pay-0", "pay-1"]
    assert payments(db_url) == 2


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
