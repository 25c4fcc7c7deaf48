"""The webhook's inbox in the ledger's own store (`ledger_inbox`; `aftersales.storage.inbox`):
every received body is committed before the webhook answers, kept byte for byte, once per
digest, in the order received; one applier at a time (across processes) takes the
unapplied rows in order and marks them applied.  Over memory, SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import OperationalError, PersistenceError
from sqlalchemy.engine import make_url

from aftersales import Ledger
from aftersales.settings import Settings
from aftersales.storage.inbox import advisory_key
from aftersales.storage.port import (
    ApplierLock,
    InboxRow,
    InboxStats,
    LedgerRecorder,
    inbox_digest,
)
from tests.conftest import _conninfo, drop_schema, new_schema_url
from tests.faults import SQLiteLock
from tests.scenario import T0

ROOT = Path(__file__).resolve().parents[2]
#: A received_at with an offset: read back as the same instant, in UTC.
AT = datetime(2024, 5, 1, 16, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
NOT_UTF8 = b'{"tag":101,"msg":"\xff\xfe\xc3\x28 \x80\x00 end"}'
ZERO = InboxStats(0, 0, 0, None, None)


def place(ledger: Ledger, order_id: str) -> None:
    ledger.place_order(order_id=order_id, at=T0, payment="online", merchant_id="M",
                       user_id="U", goods_amount=100)


def kind(url: str) -> str:
    return url.split(":", 1)[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = new_schema_url()  # (fails rather than skips in CI)
    yield url
    drop_schema(url)


def pg_connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(_conninfo(make_url(url).database or ""), autocommit=True)


def schema_of(url: str) -> str:
    return str(make_url(url).query["schema"])


# --- what is kept -----------------------------------------------------------------------


def test_the_recorder_offers_the_inbox(ledger: Ledger) -> None:
    assert isinstance(ledger.index, LedgerRecorder)
    assert isinstance(ledger.index.applier_lock(), ApplierLock)


def test_bodies_are_kept_byte_for_byte(ledger: Ledger) -> None:
    big = os.urandom(1 << 20)
    bodies = [b'{"tag":101,"msg":"[]"}', NOT_UTF8, big, b""]
    added = [ledger.index.inbox_add(b, AT) for b in bodies]
    assert [new for _, new in added] == [True] * 4
    rows = ledger.index.inbox_unapplied(0, 10)
    assert [r.body for r in rows] == bodies
    assert all(type(r.body) is bytes for r in rows)
    assert [r.seq for r in rows] == [seq for seq, _ in added]
    assert [r.digest for r in rows] == [inbox_digest(b) for b in bodies]
    assert rows[2].digest == inbox_digest(big) and len(rows[2].body) == 1 << 20
    for r in rows:
        assert isinstance(r, InboxRow)
        assert r.received_at == AT  # the same instant
        assert r.received_at.utcoffset() == timedelta(0)  # given back in UTC
        assert r.received_at == datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)


def test_the_same_body_twice_is_one_row(ledger: Ledger) -> None:
    seq, new = ledger.index.inbox_add(NOT_UTF8, AT)
    assert new
    assert ledger.index.inbox_add(NOT_UTF8, AT + timedelta(hours=1)) == (seq, False)
    assert ledger.index.inbox_add(b"other", AT)[1]
    assert ledger.index.inbox_add(NOT_UTF8, AT) == (seq, False)
    rows = ledger.index.inbox_unapplied(0, 10)
    assert len(rows) == 2 and rows[0] == InboxRow(seq, inbox_digest(NOT_UTF8), AT, NOT_UTF8)
    assert ledger.index.inbox_stats().received == 2
    ledger.index.inbox_mark_applied(seq + 1, AT)
    assert ledger.index.inbox_add(NOT_UTF8, AT) == (seq, False)  # applied: still one row


def test_a_naive_received_at_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.index.inbox_add(b"x", datetime(2024, 5, 1, 8, 0))
    assert ledger.index.inbox_stats() == ZERO


def test_rows_come_in_the_order_received_and_by_pages(ledger: Ledger) -> None:
    seqs = [ledger.index.inbox_add(f"body {n}".encode(), AT + timedelta(seconds=n))[0]
            for n in range(7)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7
    rows = ledger.index.inbox_unapplied(0, 100)
    assert [r.seq for r in rows] == seqs
    assert [r.body for r in rows] == [f"body {n}".encode() for n in range(7)]
    assert [r.received_at for r in rows] == [AT + timedelta(seconds=n) for n in range(7)]
    page = ledger.index.inbox_unapplied(seqs[1], 3)
    assert [r.seq for r in page] == seqs[2:5]
    assert [r.seq for r in ledger.index.inbox_unapplied(seqs[4], 3)] == seqs[5:]
    assert ledger.index.inbox_unapplied(seqs[-1], 3) == []
    assert ledger.index.inbox_unapplied(0, 0) == []


def test_marking_rows_applied(ledger: Ledger) -> None:
    inbox = ledger.index
    assert inbox.inbox_stats() == ZERO
    assert inbox.inbox_mark_applied(10**9, AT) == 0
    seqs = [inbox.inbox_add(f"b{n}".encode(), AT + timedelta(minutes=n))[0]
            for n in range(5)]
    assert inbox.inbox_stats() == InboxStats(5, 0, 5, AT, seqs[0])
    assert inbox.inbox_mark_applied(seqs[2], AT + timedelta(hours=1)) == 2
    assert inbox.inbox_stats() == InboxStats(5, 2, 3, AT + timedelta(minutes=2), seqs[2])
    stats = inbox.inbox_stats()
    assert stats.oldest_unapplied is not None and stats.oldest_unapplied.utcoffset() == \
        timedelta(0)
    assert [r.seq for r in inbox.inbox_unapplied(0, 10)] == seqs[2:]
    assert inbox.inbox_mark_applied(seqs[2], AT) == 0  # done already
    assert inbox.inbox_mark_applied(seqs[1], AT) == 0
    assert inbox.inbox_unapplied(0, 10)[0].seq == seqs[2]
    assert inbox.inbox_mark_applied(seqs[-1] + 1, AT) == 3
    assert inbox.inbox_stats() == InboxStats(5, 5, 0, None, None)
    assert inbox.inbox_unapplied(0, 10) == []
    later, new = inbox.inbox_add(b"later", AT)
    assert new and later > seqs[-1]
    assert inbox.inbox_stats() == InboxStats(6, 5, 1, AT, later)
    with pytest.raises(ValueError, match="timezone-aware"):
        inbox.inbox_mark_applied(later + 1, datetime(2024, 5, 1))


def test_many_threads_add_at_once_while_events_are_written(ledger: Ledger) -> None:
    """16 threads of a web server's pool, 50 bodies each, while another thread of the same
    process writes events through the same recorder."""
    threads, each = 16, 50
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def receive(t: int) -> list[tuple[int, bool]]:
        start.wait()
        return [ledger.index.inbox_add(f'{{"thread":{t},"n":{n}}}'.encode(),
                                       AT + timedelta(microseconds=n))
                for n in range(each)]

    def write_events() -> int:
        start.wait()
        n = 0
        while not stop.is_set() or n < 5:
            place(ledger, f"W{n}")
            n += 1
        return n

    with ThreadPoolExecutor(threads + 1) as pool:
        writer = pool.submit(write_events)
        futures = [pool.submit(receive, t) for t in range(threads)]
        added = [x for f in futures for x in f.result(timeout=120)]
        stop.set()
        written = writer.result(timeout=120)
    assert len(added) == threads * each
    assert all(new for _, new in added)
    assert len({seq for seq, _ in added}) == threads * each
    rows = ledger.index.inbox_unapplied(0, 10_000)
    assert len(rows) == threads * each
    assert [r.seq for r in rows] == sorted(seq for seq, _ in added)
    assert {r.body for r in rows} == {f'{{"thread":{t},"n":{n}}}'.encode()
                                      for t in range(threads) for n in range(each)}
    for t in range(threads):  # each thread's bodies in the order it added them
        mine = [r for r in rows if r.body.startswith(f'{{"thread":{t},'.encode())]
        assert [r.body for r in mine] == [f'{{"thread":{t},"n":{n}}}'.encode()
                                          for n in range(each)]
    assert ledger.index.inbox_stats() == InboxStats(800, 0, 800, rows[0].received_at,
                                                    rows[0].seq)
    assert all(ledger.get_order(f"W{n}") is not None for n in range(written))


def test_rows_become_visible_in_seq_order(ledger: Ledger) -> None:
    """An applier that has read every unapplied row up to seq N may mark the rows before
    N + 1 applied: no row with a smaller seq is committed after it is seen."""
    threads, each = 12, 40
    done, reading = threading.Event(), threading.Event()
    start = threading.Barrier(threads + 1)

    def receive(t: int) -> None:
        start.wait()
        reading.wait()  # the reader reads before the first add and after the last
        for n in range(each):
            ledger.index.inbox_add(f"{t}/{n}".encode(), AT)

    late: list[tuple[int, int]] = []

    def read() -> int:
        start.wait()
        seen, top, reads = set[int](), 0, 0
        while True:
            last = done.is_set()
            rows = ledger.index.inbox_unapplied(0, 10_000)
            reads += 1
            reading.set()
            new = {r.seq for r in rows} - seen
            late.extend((seq, top) for seq in new if seq < top)
            seen |= new
            top = max(seen, default=0)
            if last:
                return reads

    with ThreadPoolExecutor(threads + 1) as pool:
        reader = pool.submit(read)
        for f in [pool.submit(receive, t) for t in range(threads)]:
            f.result(timeout=120)
        done.set()
        assert reader.result(timeout=60) > 1
    assert late == []
    assert ledger.index.inbox_stats().received == threads * each


# --- waiting for the store's locks, and failing as the store does -----------------------


def test_sqlite_a_body_waits_for_a_write_transaction_of_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        taken, released = threading.Event(), []

        def hold() -> None:
            with ledger.recorder.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
                c.execute("INSERT INTO ledger_commands VALUES ('held', 'x', 'y')")
                taken.set()
                time.sleep(1.0)
                released.append(time.monotonic())

        holder = threading.Thread(target=hold)
        holder.start()
        assert taken.wait(10)
        _, new = ledger.index.inbox_add(b"waits", AT)
        done = time.monotonic()
        holder.join()
        assert new and released and done >= released[0]
        assert "held" in ledger.index.command_ids()  # the other transaction committed
        assert [r.body for r in ledger.index.inbox_unapplied(0, 10)] == [b"waits"]
    finally:
        ledger.close()


def test_sqlite_a_body_waits_for_another_process_then_fails_as_the_store_does(
        tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    patient = Ledger(f"sqlite:///{path}")  # (the busy timeout: 10 s)
    impatient = Ledger(f"sqlite:///{path}", settings=Settings(lock_timeout=0.5))
    try:
        with SQLiteLock(path) as other:
            letting_go = threading.Timer(0.3, other.release)
            letting_go.start()
            assert patient.index.inbox_add(b"after the other process", AT)[1]
            letting_go.join()
        with SQLiteLock(path):
            began = time.monotonic()
            with pytest.raises(OperationalError, match="locked"):
                impatient.index.inbox_add(b"never", AT)
            assert time.monotonic() - began < 5
        assert [r.body for r in patient.index.inbox_unapplied(0, 10)] == \
            [b"after the other process"]
    finally:
        patient.close()
        impatient.close()


def test_postgres_a_body_is_accepted_while_the_events_table_is_locked(pg_url: str) -> None:
    ledger = Ledger(pg_url)
    try:
        place(ledger, "A")
        table = ledger.recorder.events_table_name  # type: ignore[attr-defined]
        with pg_connect(pg_url) as other:
            other.autocommit = False
            other.execute(f'LOCK TABLE "{schema_of(pg_url)}"."{table}" IN EXCLUSIVE MODE')
            with ThreadPoolExecutor(8) as pool:
                added = list(pool.map(lambda n: ledger.index.inbox_add(
                    f"locked {n}".encode(), AT), range(20), timeout=20))
                assert all(new for _, new in added)
                seq = max(s for s, _ in added)
                assert pool.submit(ledger.index.inbox_stats).result(5).backlog == 20
                assert len(pool.submit(ledger.index.inbox_unapplied, 0, 100).result(5)) == 20
                assert pool.submit(ledger.index.inbox_mark_applied, seq + 1, AT
                                   ).result(5) == 20
                writing = pool.submit(place, ledger, "B")  # the events wait for the lock
                time.sleep(0.3)
                assert not writing.done()
                other.rollback()
                writing.result(20)
        assert ledger.get_order("B") is not None
        assert ledger.index.inbox_stats() == InboxStats(20, 20, 0, None, None)
    finally:
        ledger.close()


def test_postgres_a_body_fails_as_the_store_does(pg_url: str) -> None:
    ledger = Ledger(pg_url)
    try:
        with pg_connect(pg_url) as admin:
            admin.execute(f'ALTER TABLE "{schema_of(pg_url)}".ledger_inbox RENAME TO gone')
        with pytest.raises(PersistenceError) as raised:
            ledger.index.inbox_add(b"x", AT)
        assert "ledger_inbox" in str(raised.value)
    finally:
        ledger.close()


# --- a store written before the inbox ---------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_store_without_the_inbox_reads_as_empty_and_gets_it_when_opened_to_write(
        store: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}" if store == "sqlite" else new_schema_url()
    try:
        ledger = Ledger(url)
        place(ledger, "A")
        ledger.index.inbox_add(b"body", AT)
        ledger.close()
        if store == "sqlite":
            import sqlite3
            with sqlite3.connect(tmp_path / "old.db") as c:
                c.execute("DROP TABLE ledger_inbox")
        else:
            with pg_connect(url) as admin:
                admin.execute(f'DROP TABLE "{schema_of(url)}".ledger_inbox')
        old = Ledger(url, create_tables=False)
        try:
            assert old.index.inbox_stats() == ZERO
            assert old.index.inbox_unapplied(0, 10) == []
            assert old.get_order("A") is not None
        finally:
            old.close()
        again = Ledger(url)  # opened for writing: the table is made
        try:
            assert again.index.inbox_stats() == ZERO
            assert again.index.inbox_add(b"body", AT)[1]
            assert again.index.inbox_stats().received == 1
        finally:
            again.close()
    finally:
        if store == "postgresql":
            drop_schema(url)


# --- the applier's lock -----------------------------------------------------------------


def test_one_applier_lock_holder_at_a_time_in_a_process(ledger: Ledger) -> None:
    first, second = ledger.index.applier_lock(), ledger.index.applier_lock()
    try:
        assert not first.held()
        assert first.try_acquire() and first.held()
        assert first.try_acquire()  # had it already
        assert not second.try_acquire() and not second.held()
        first.release()
        first.release()  # again: nothing
        assert not first.held()
        assert second.try_acquire() and second.held()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()


#: A second process with its own holder, driven line by line.
HOLDER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from aftersales import Ledger
    from tests.scenario import T0
    ledger = Ledger(sys.argv[1], create_tables=False)
    lock = ledger.index.applier_lock()
    for line in sys.stdin:
        word, *rest = line.split()
        if word == "try":
            answer = lock.try_acquire()
        elif word == "held":
            answer = lock.held()
        elif word == "release":
            answer = lock.release()
        elif word == "write":  # an order and a body
            ledger.place_order(order_id=rest[0], at=T0, payment="online",
                               merchant_id="M", user_id="U", goods_amount=100)
            answer = ledger.index.inbox_add(rest[0].encode(), datetime.now(UTC))[1]
        print(answer, flush=True)
""")


class Holder:
    """A holder of the applier lock in another process."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, f"the holder process ended ({self.proc.poll()})"
        return answer

    def end(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.end()


def eventually(check: object, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while True:
        if check():  # type: ignore[operator]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def test_sqlite_one_applier_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    mine = ledger.index.applier_lock()
    other = Holder(url)
    try:
        assert mine.try_acquire()
        assert other.ask("try") == "False"
        mine.release()
        assert other.ask("try") == "True"
        assert other.ask("held") == "True"
        assert not mine.try_acquire()
        assert other.ask("release") == "None"
        assert mine.try_acquire()
        assert other.ask("try") == "False"
        mine.release()
        assert other.ask("try") == "True"
        other.kill()  # a process that dies lets go
        assert eventually(mine.try_acquire)
    finally:
        mine.release()
        other.end()
        ledger.close()


def test_sqlite_the_flock_leaves_the_ledgers_own_locks_alone(tmp_path: Path) -> None:
    """flock and SQLite's POSIX locks are independent: the ledger writes while another
    process holds the applier lock, and another process writes while this one holds it;
    and letting go of the applier lock does not let go of this process's SQLite locks
    (closing any descriptor of the file would)."""
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    ledger = Ledger(url)
    other = Holder(url)
    try:
        assert other.ask("try") == "True"
        place(ledger, "A")
        assert ledger.index.inbox_add(b"while another process holds it", AT)[1]
        assert ledger.index.inbox_mark_applied(10**6, AT) == 1
        assert ledger.get_order("A") is not None
        assert other.ask("release") == "None"

        mine = ledger.index.applier_lock()
        assert mine.try_acquire()
        assert other.ask("write B") == "True"  # the other process writes, events and inbox
        assert ledger.get_order("B") is not None
        assert ledger.index.inbox_stats().received == 2

        # This process's WAL connections hold SQLite's shared lock on the file; another
        # process sees it before and after the applier lock comes and goes.
        assert ledger.get_order("A") is not None
        probe = textwrap.dedent(f"""
            import fcntl, os
            fd = os.open({str(path)!r}, os.O_RDWR)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 510, 0x40000002)
                print("free")
            except OSError:
                print("held")
        """)

        def sqlite_lock_seen() -> str:
            return subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                  text=True, check=True).stdout.strip()

        assert sqlite_lock_seen() == "held"
        mine.release()
        for _ in range(3):
            again = ledger.index.applier_lock()
            assert again.try_acquire()
            again.release()
            del again
        assert sqlite_lock_seen() == "held"
        place(ledger, "C")
        assert ledger.get_order("C") is not None
    finally:
        other.end()
        ledger.close()


def advisory_holder(conn: psycopg.Connection[tuple[object, ...]], key: int) -> int | None:
    """The backend pid holding the advisory lock `key` (None: nobody)."""
    found = conn.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
        "database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s::oid AND objid = %s::oid AND objsubid = 1",
        ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF)).fetchone()
    return None if found is None else int(found[0])  # type: ignore[call-overload]


def test_postgres_one_applier_across_processes_and_a_lost_connection(pg_url: str) -> None:
    ledger = Ledger(pg_url)
    key = advisory_key("inbox applier", schema_of(pg_url))
    mine = ledger.index.applier_lock()
    other = Holder(pg_url)
    try:
        with pg_connect(pg_url) as admin:
            assert mine.try_acquire() and mine.held()
            holder = advisory_holder(admin, key)
            assert holder is not None
            assert other.ask("try") == "False"
            mine.release()
            assert advisory_holder(admin, key) is None
            assert other.ask("try") == "True"
            assert other.ask("held") == "True"
            assert not mine.try_acquire() and not mine.held()

            # The other process's lock connection is killed: the lock goes with it.
            theirs = advisory_holder(admin, key)
            assert theirs is not None and theirs != holder
            admin.execute("SELECT pg_terminate_backend(%s)", (theirs,))
            assert other.ask("held") == "False"
            assert eventually(mine.try_acquire)
            assert mine.held()
            assert other.ask("try") == "False"  # (it connects again: still one holder)

            # And this process's: held() says so, and the other takes over.
            ours = advisory_holder(admin, key)
            assert ours is not None
            admin.execute("SELECT pg_terminate_backend(%s)", (ours,))
            assert eventually(lambda: not mine.held())
            assert other.ask("try") == "True"
            assert not mine.try_acquire()  # a new connection, and the lock is theirs
            other.kill()  # a process that dies lets go
            assert eventually(mine.try_acquire)
            mine.release()
            mine.release()
            assert advisory_holder(admin, key) is None
    finally:
        mine.release()
        other.end()
        ledger.close()


def test_postgres_applier_locks_of_two_schemas_are_apart(pg_url: str) -> None:
    second_url = new_schema_url()
    first, second = Ledger(pg_url), Ledger(second_url)
    try:
        a, b = first.index.applier_lock(), second.index.applier_lock()
        assert a.try_acquire() and b.try_acquire()
        a.release()
        b.release()
    finally:
        first.close()
        second.close()
        drop_schema(second_url)


def test_sqlite_the_applier_lock_is_a_flock_on_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger(f"sqlite:///{path}")
    lock = ledger.index.applier_lock()
    probe = textwrap.dedent(f"""
        import fcntl, os
        fd = os.open({str(path)!r}, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            print("free")
        except BlockingIOError:
            print("taken")
    """)

    def seen() -> str:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        assert seen() == "free"
        assert lock.try_acquire()
        assert seen() == "taken"
        lock.release()
        assert seen() == "free"
    finally:
        lock.release()
        ledger.close()
