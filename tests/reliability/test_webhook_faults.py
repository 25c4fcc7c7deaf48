"""`serve-webhook` under real faults: SIGKILL at seeded points of a load of 16 clients and a
restart (the platform sending again what was not answered), two processes on one
PostgreSQL schema with the active one killed, the store's server stopped and started
under a running webhook, and a full disk under a SQLite store.  What was answered success
is kept once, every message is decided once, and the ledger is an uninterrupted run's."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aftersales import Ledger
from aftersales.application.commands import parse_command
from aftersales.application.status import status_document
from aftersales.feeds.run import ingest_feed
from aftersales.storage.port import inbox_digest
from tests.conftest import drop_schema, new_schema_url
from tests.douyin_bodies import HOUR, body, order_msg, place, shipped
from tests.douyin_bodies import paid as paid_message
from tests.faults import Cluster, SmallDisk, cluster, small_disk
from tests.integration.test_stateful import comparable
from tests.webhook_server import (
    NOW,
    WAIT,
    Server,
    metric,
    paid,
    payments,
    placed,
    received,
    server,
)

__all__ = ["cluster", "small_disk"]  # the fixtures

pytestmark = pytest.mark.slow

SUCCESS = {"code": 0, "msg": "success"}
ORDERS = 150
CLIENTS = 16


# --- the load: real-shape bodies, some with several messages, some sent twice ----------


def load() -> list[bytes]:
    """The posts of the load, in a fixed order (a body sent twice is in it twice).  Each
    order is paid; a fifth are also shipped in the body of their payment; a message may
    come in two bodies; a body may carry two orders' payments.  Whatever order the bodies
    arrive in, each order's messages are decided in the same order (a body's messages in
    its own order, paid before shipped), so the ledger does not depend on the arrival."""
    posts: list[bytes] = []
    for n in range(ORDERS):
        pay = paid_message(f"pay-{n}", f"W{n}", at=NOW - HOUR)
        ship = shipped(f"ship-{n}", f"W{n}", at=NOW - HOUR / 2, tracking=f"SF{n:04}")
        kind = n % 5
        if kind == 0:  # several messages, one order
            posts.append(body(pay, ship))
        elif kind == 1:  # two orders' payments in one body (the next one's alone too)
            following = paid_message(f"pay-{n + 1}", f"W{n + 1}", at=NOW - HOUR)
            posts.append(body(pay, following) if n + 1 < ORDERS else body(pay))
        elif kind == 2:
            posts.append(body(pay))
        elif kind == 3:  # the same body twice
            posts += [body(pay), body(pay)]
        else:  # a message alone, and again in a body with its shipping
            posts += [body(pay), body(pay, ship)]
    return posts


def keys() -> set[str]:
    """Every message key of the load."""
    found = set()
    for post in load():
        for m in json.loads(post):
            found.add(f"douyin:{m['msg_id']}")
    return found


def place_orders(url: str, orders: int = ORDERS) -> None:
    """The orders placed two hours ago, in one transaction."""
    ledger = Ledger(url)
    try:
        ledger.execute_batch([parse_command(place(f"W{n}", at=NOW - 2 * HOUR))
                              for n in range(orders)])
    finally:
        ledger.close()


def state(url: str, orders: int = ORDERS) -> dict[str, Any]:
    """Each order's status document and events (without recorded times), and each
    message's outcome."""
    ledger = Ledger(url)
    try:
        docs, events = {}, {}
        for n in range(orders):
            order = ledger.get_order(f"W{n}")
            assert order is not None
            docs[f"W{n}"] = status_document(order)
            events[f"W{n}"] = [comparable(e) for e in ledger.order_events(f"W{n}")]
        outcomes = {k: row.outcome for k, row in ledger.message_outcomes(sorted(keys())).items()}
        return {"status": docs, "events": events, "outcomes": outcomes}
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The load applied uninterrupted through the feed path, each body once."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'ledger.db'}"
    place_orders(url)
    ledger = Ledger(url)
    try:
        report = ingest_feed(ledger, list(dict.fromkeys(load())), lateness=timedelta(0),
                             received_at=NOW)
    finally:
        ledger.close()
    assert report.applied == len(keys()) and not report.refused and not report.reported
    return state(url)


# --- talking to the server and reading the store -----------------------------------------


def send(s: Server, payload: bytes) -> int | None:
    """The status answered (-200: a 200 whose document is not the success one), or None
    when no answer came (refused, reset, cut short).  Called from the clients' threads,
    so it asserts nothing itself."""
    try:
        status, doc = s.post(payload)
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return -200 if status == 200 and doc != SUCCESS else status


def until(condition: Callable[[], bool], what: str, bound: float = WAIT) -> None:
    """Poll `condition` until it holds (bounded: `bound` seconds)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {bound:.0f} s: {what}")
        time.sleep(0.1)


def active(s: Server) -> float:
    status, answer = s.get("/metrics")
    assert status == 200
    return metric(answer, "aftersales_applier_active")


def select(url: str, sql: str) -> list[Any]:
    """Rows of the store's own tables ({t} before a table's name: its schema, if any)."""
    if url.startswith("sqlite:///"):
        engine, prefix = create_engine(url), ""
    else:
        parsed = make_url(url)
        engine = create_engine(parsed.set(drivername="postgresql+psycopg", query={}))
        prefix = f'"{parsed.query.get("schema") or "public"}".'
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql.format(t=prefix))))
    finally:
        engine.dispose()


def inbox(url: str) -> Counter[str]:
    """The digests of the bodies the inbox holds, each with its number of rows; the rows'
    bodies checked against their digests (kept as received, byte for byte)."""
    rows = select(url, "SELECT digest, body FROM {t}ledger_inbox")
    assert all(inbox_digest(bytes(r[1])) == r[0] for r in rows)
    return Counter(str(r[0]) for r in rows)


def drain(url: str, bodies: int) -> None:
    """Wait until the inbox holds `bodies` bodies, every one applied (bounded: a bound
    well past what it takes on a loaded machine, not a pause)."""
    ledger = Ledger(url)
    try:
        def done() -> bool:
            stats = ledger.index.inbox_stats()
            return stats.received == bodies and stats.backlog == 0
        until(done, f"{bodies} bodies in the inbox, every one applied", bound=3 * WAIT)
    finally:
        ledger.close()


def stop(s: Server) -> None:
    """SIGTERM: the server stops cleanly (exit 0)."""
    s.process.send_signal(signal.SIGTERM)
    s.expect("stopped")
    assert s.process.wait(timeout=WAIT) == 0


# --- 1. SIGKILL at seeded points of a load, then a restart ---------------------------


@pytest.mark.parametrize("seed", [11, 23, 47])
def test_a_kill_under_load_then_a_restart_gives_an_uninterrupted_ledger(
        tmp_path: Path, db_url: str, seed: int, reference: dict[str, Any]) -> None:
    """16 clients post the load; after a seeded number of answers 200 the server is
    killed (SIGKILL), whatever it was doing.  Every body answered 200 is in the inbox;
    restarted, it is sent what was not answered 200 (as the platform sends again) and
    applies the inbox to the end: each body kept once, each message decided once, and
    each order exactly as the same bodies applied once, uninterrupted, leave it."""
    rng = random.Random(seed)
    posts = load()
    rng.shuffle(posts)
    kill_at = rng.randrange(10, len(posts) - 40)  # the answers 200 seen before the kill
    distinct = set(posts)
    place_orders(db_url)
    answered: list[int | None] = [None] * len(posts)
    guard = threading.Lock()
    queue = iter(range(len(posts)))
    ok = 0
    killed = threading.Event()

    with server(tmp_path, db_url, "--lateness", "0") as s:
        def client() -> None:
            nonlocal ok
            while True:
                with guard:
                    i = next(queue, None)
                if i is None:
                    return
                answered[i] = status = send(s, posts[i])
                if status == 200:
                    with guard:
                        ok += 1
                        if ok == kill_at:
                            s.process.send_signal(signal.SIGKILL)
                            killed.set()

        clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for c in clients:
            c.start()
        for c in clients:
            c.join(timeout=4 * WAIT)
        assert not any(c.is_alive() for c in clients)
        assert killed.is_set()
        assert s.process.wait(timeout=WAIT) == -signal.SIGKILL
    assert set(answered) <= {200, None}, Counter(answered)  # no answer but success
    acknowledged = {posts[i] for i, a in enumerate(answered) if a == 200}
    assert len(acknowledged) >= 1
    kept = inbox(db_url)
    # What was answered success is in the store, once, even though the process died.
    assert all(kept[inbox_digest(b)] == 1 for b in acknowledged)
    assert set(kept) <= {inbox_digest(b) for b in distinct}

    again = [posts[i] for i, a in enumerate(answered) if a != 200]
    with server(tmp_path, db_url, "--lateness", "0") as s:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            assert list(pool.map(lambda b: send(s, b), again)) == [200] * len(again)
        drain(db_url, len(distinct))
        stop(s)
    assert not [line for line in s.seen if "Traceback" in line]

    kept = inbox(db_url)
    assert kept == Counter({inbox_digest(b): 1 for b in distinct})
    messages = select(db_url, "SELECT key, count(*) FROM {t}ledger_messages GROUP BY key")
    assert {str(k): int(n) for k, n in messages} == dict.fromkeys(keys(), 1)
    found = state(db_url)
    assert found["outcomes"] == reference["outcomes"]
    assert found["status"] == reference["status"]
    assert found["events"] == reference["events"]


# --- 2. two processes on one PostgreSQL schema, the active one killed ----------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = new_schema_url()
    yield url
    drop_schema(url)


def test_two_processes_on_one_schema_one_applies_and_the_other_takes_over(
        tmp_path: Path, pg_url: str) -> None:
    """The first holds what it receives in a window of a day (answered and kept, not
    applied); killed, the second takes the applier lock and applies what both answered."""
    orders = 40
    placed(pg_url, orders)
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    with server(first_dir, pg_url, "--lateness", "86400") as first:
        until(lambda: active(first) == 1, "the first process applying")
        with server(second_dir, pg_url, "--lateness", "0") as second:
            for n in range(orders):
                assert send((first, second)[n % 2], paid(n)) == 200
            assert (active(first), active(second)) == (1, 0)  # one applier at a time
            assert payments(pg_url) == 0  # held by the first one's window
            first.process.send_signal(signal.SIGKILL)
            assert first.process.wait(timeout=WAIT) == -signal.SIGKILL
            until(lambda: active(second) == 1, "the second process taking over")
            drain(pg_url, orders)
            assert send(second, paid(0)) == 200  # sent again: kept once, applied once
            stop(second)
    assert not [line for line in first.seen + second.seen if "Traceback" in line]
    assert sorted(inbox(pg_url).values()) == [1] * orders
    messages = select(pg_url, "SELECT key, outcome FROM {t}ledger_messages")
    assert sorted(messages) == sorted((f"douyin:pay-{n}", "applied") for n in range(orders))
    ledger = Ledger(pg_url)
    try:
        paid_orders = [[type(e).__name__ for e in ledger.order_events(f"W{n}")]
                       for n in range(orders)]
    finally:
        ledger.close()
    assert paid_orders == [["OrderPlaced", "PaymentReceived"]] * orders


# --- 3. the store's server stopped and started under a running webhook ----------------


def test_readiness_follows_the_store_and_a_post_is_refused_while_it_is_down(
        tmp_path: Path, cluster: Cluster) -> None:
    """The PostgreSQL server stopped under a running webhook: alive (/healthz 200) but
    not ready (/readyz 503, saying why), a body answered 503 and not kept; the server
    started again: ready, the applier back, the body sent again kept and applied."""
    url = cluster.url
    placed(url, 2)
    with server(tmp_path, url, "--lateness", "0") as s:
        assert s.get("/healthz")[0] == 200
        assert s.get("/readyz")[0] == 200
        assert send(s, paid(0)) == 200
        s.expect("ack applied 1")

        cluster.stop()
        until(lambda: s.get("/readyz")[0] == 503, "/readyz saying 503")
        status, answer = s.get("/readyz")
        doc = json.loads(answer)
        assert status == 503 and doc["ready"] is False and doc["reason"], doc
        assert "the store failed" in doc["reason"], doc
        assert s.get("/healthz")[0] == 200  # alive, not ready
        assert s.post(paid(1)) == (503, {"code": 50300, "msg": "the store cannot take the "
                                         "body now; send it again"})
        assert s.get("/healthz")[0] == 200
        until(lambda: active(s) == 0, "the applier letting go of its lost lock")
        assert s.get("/healthz")[0] == 200

        cluster.start()
        until(lambda: s.get("/readyz")[0] == 200, "/readyz saying 200 again")
        until(lambda: active(s) == 1, "the applier applying again")
        assert s.get("/healthz")[0] == 200
        assert received(url) == 1  # the body answered 503 was not kept
        # The one body: its failure tried once more at once, then answered 503.
        assert metric(s.get("/metrics")[1], "aftersales_store_retries_total",
                      where="inbox") == 2
        assert send(s, paid(1)) == 200  # the platform sends it again
        s.expect("ack applied ")
        drain(url, 2)
        stop(s)
    assert not [line for line in s.seen if "Traceback" in line]
    assert sorted(inbox(url).values()) == [1, 1]  # the refused one was not kept
    assert payments(url) == 2


# --- 4. a full disk under a SQLite store -------------------------------------------------


def fill(disk: SmallDisk) -> Path:
    """Fill the file system to its last byte; the filler file."""
    filler = disk.path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (64 * 1024, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_answers_503_keeps_nothing_and_recovers_without_a_restart(
        tmp_path: Path, small_disk: SmallDisk) -> None:
    """The SQLite file's file system full: a body is answered 503 (an answer, not a
    dropped connection; the reason logged, no traceback) and nothing of it is kept;
    the space freed, the same process takes the same body and applies it."""
    url = f"sqlite:///{small_disk.path / 'ledger.db'}"
    placed(url, 2)
    # A body of about 100 KB: more than any space the store's files have to spare.
    large = body(order_msg(101, "pay-1", "W1", pay_time=int((NOW - HOUR).timestamp()),
                           pay_type=1, pay_amount=10700, remark="x" * 100_000))
    with server(tmp_path, url, "--lateness", "0") as s:
        assert send(s, paid(0)) == 200
        s.expect("ack applied 1")
        filler = fill(small_disk)
        assert s.post(large) == (503, {"code": 50300, "msg": "the store cannot take the "
                                       "body now; send it again"})
        assert s.get("/healthz")[0] == 200
        assert sorted(inbox(url).values()) == [1]  # nothing half kept
        filler.unlink()
        assert send(s, large) == 200  # the same body again, the same process
        s.expect("ack applied 2")
        stop(s)
    assert not [line for line in s.seen if "Traceback" in line]
    refused = [json.loads(line) for line in s.seen if "could not be kept" in line]
    assert len(refused) == 1 and "full" in refused[0]["reason"], refused
    assert inbox(url) == Counter({inbox_digest(paid(0)): 1, inbox_digest(large): 1})
    assert select(url, "PRAGMA integrity_check") == [("ok",)]
    assert payments(url) == 2
