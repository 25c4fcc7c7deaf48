"""Live Douyin pushes (`aftersales serve-webhook`): who may send them, where a received
body is kept, and the one applier that takes the kept bodies into the ledger.

A push is accepted when its `event-sign` header is the MD5 (hex) of app_key + body +
app_secret.  An accepted body is committed to the store's inbox (`ledger_inbox`: its
exact bytes, its receive time, its digest, so the same body received twice is one row)
before the platform is answered `{"code": 0, "msg": "success"}`: what was answered
success is in the ledger's own database, in its backups and on its replicas.

The applier takes unapplied inbox rows in the order received, holds each message in the
lateness window and decides it once its place in business time is known (as a file's
feed does, `aftersales/feeds/run.py`).  Each message's outcome is recorded in the
transaction of its events, under the message's key, so a message is decided once
whatever stops the applier; a row is marked applied once every message of it is
decided, in the transaction that records the last of them.  A row taken again after a
crash finds its messages decided: nothing changes.
Only one applier works on a store at a time (the store's applier lock: an advisory lock
on PostgreSQL, a file lock on SQLite); another process's applier waits to take over.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aftersales.application.ledger import Ledger
from aftersales.errors import SettingsError, StoreUnavailable
from aftersales.feeds.douyin import TOLERANCE, Tolerance
from aftersales.feeds.run import OUTCOMES, Feed, FeedReport
from aftersales.storage.retry import describe as store_error
from aftersales.storage.retry import is_store_error

KEY_ENV, SECRET_ENV = "AFTERSALES_DOUYIN_APP_KEY", "AFTERSALES_DOUYIN_APP_SECRET"
#: Inbox rows read per look.
TAKE = 200


def secrets(environ: dict[str, str] | os._Environ[str] | None = None) -> tuple[str, str]:
    """The app's key and secret: from `$AFTERSALES_DOUYIN_APP_KEY` and `…_SECRET`, or
    from the files `$…_KEY_FILE` and `$…_SECRET_FILE` name (a container's or systemd's
    credentials; the file's trailing newline is not part of it)."""
    env = os.environ if environ is None else environ
    return _secret(env, KEY_ENV), _secret(env, SECRET_ENV)


def _secret(env: dict[str, str] | os._Environ[str], name: str) -> str:
    given, path = env.get(name, ""), env.get(name + "_FILE", "")
    if given and path:
        raise SettingsError(f"give {name} or {name}_FILE, not both")
    if path:
        try:
            given = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or "not UTF-8 text"
            raise SettingsError(f"{name}_FILE {path}: cannot be read: {reason}") from None
    if not given:
        raise SettingsError(f"serve-webhook needs the app's key and secret: set {KEY_ENV} "
                            f"and {SECRET_ENV} (or {KEY_ENV}_FILE and {SECRET_ENV}_FILE)")
    return given


def sign(key: str, body: bytes, secret: str) -> str:
    """The `event-sign` of a body: MD5 of app_key + body + app_secret, as hex."""
    return hashlib.md5(key.encode() + body + secret.encode()).hexdigest()


def received_line(body: bytes, received_at: datetime) -> bytes:
    """A received body as a feed line `{"received_at": …, "body": …}` (the receive time
    is the time of its messages that carry none).  The body's own bytes are kept, not a
    re-encoding of them (which would turn a number no float can hold into `Infinity`):
    only its line breaks, which JSON allows between tokens and never inside a string,
    become spaces."""
    kept = body.strip().replace(b"\r", b" ").replace(b"\n", b" ")
    return (b'{"received_at":"' + received_at.isoformat().encode() + b'","body":' + kept
            + b"}")


def spooled(line: bytes) -> tuple[bytes, datetime] | None:
    """A line of an earlier version's spool file as (body, receive time); None for a line
    that is not one (a torn last line, never answered success)."""
    head, middle = b'{"received_at":"', b'","body":'
    line = line.rstrip(b"\r\n")
    if not (line.startswith(head) and line.endswith(b"}") and middle in line):
        return None
    at, body = line[len(head):].split(middle, 1)
    try:
        return body[:-1], datetime.fromisoformat(at.decode())
    except (UnicodeDecodeError, ValueError):
        return None


@dataclass
class Progress:
    """What the applier has done, for /metrics and /readyz."""

    active: bool = False  # holds the applier lock
    failed: BaseException | None = None
    store_retries: int = 0


class Applier:
    """The thread that applies the inbox to the ledger while it holds the store's applier
    lock (another process's applier waits meanwhile, and takes over if this one stops)."""

    def __init__(self, open_ledger: Callable[[], Ledger], lateness: timedelta,
                 clock: Callable[[], datetime], log: logging.Logger, *,
                 say: Callable[[str], None] = lambda text: None, poll: float = 0.5,
                 tolerance: Tolerance = TOLERANCE,
                 on_outcomes: Callable[[dict[str, int]], None] = lambda counts: None,
                 on_retry: Callable[[], None] = lambda: None) -> None:
        self.open_ledger, self.lateness, self.tolerance = open_ledger, lateness, tolerance
        self.clock, self.log, self.say, self.poll = clock, log, say, poll
        self.on_outcomes, self.on_retry = on_outcomes, on_retry
        self.progress = Progress()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.on_failure: Callable[[], None] = lambda: None
        self.thread = threading.Thread(target=self._run, name="applier", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        """Stop once the transaction under way is recorded."""
        self.stop.set()
        self.wake.set()
        self.thread.join()

    def _run(self) -> None:
        pause = 0.5
        while not self.stop.is_set():
            try:
                ledger = self.open_ledger()
                try:
                    self._hold(ledger)
                    pause = 0.5
                finally:
                    self.progress.active = False
                    ledger.close()
            except Exception as e:
                if not (is_store_error(e) or isinstance(e, StoreUnavailable)):
                    self.progress.failed = e  # said; the server stops (exit 3), and a
                    self.log.error("the applier stopped", exc_info=e)  # supervisor
                    self.say(f"aftersales: the applier stopped: {e}")  # restarts it
                    self.on_failure()
                    return
                # The store failed: what is in the inbox stays; start again from its
                # first unapplied row once it is back (decided messages are known).
                self.progress.store_retries += 1
                self.on_retry()
                self.log.warning("the store failed; trying again", extra={"fields": {
                    "reason": store_error(e), "retry_in_seconds": pause}})
                self.stop.wait(pause)
                pause = min(pause * 2, 30.0)

    def _hold(self, ledger: Ledger) -> None:
        """Wait for the applier lock, then apply while it is held."""
        lock = ledger.index.applier_lock()
        try:
            while not self.stop.is_set():
                if lock.try_acquire():
                    break
                self.stop.wait(max(self.poll, 1.0))  # another process applies
            else:
                return
            self.progress.active = True
            self.log.info("applying the inbox", extra={"fields": {"pid": os.getpid()}})
            self._apply(ledger, lock.held)
        finally:
            lock.release()

    def _apply(self, ledger: Ledger, held: Callable[[], bool]) -> None:
        inbox = ledger.index
        feed = Feed(ledger, self.lateness, on_refused=self._refused, tolerance=self.tolerance,
                    inbox=True)
        told = FeedReport()
        # Rows are taken in seq order, which is the order they were committed (the store
        # numbers them under its write lock): every row before `after` has been read.
        after = marked = 0
        while not self.stop.is_set():
            if not held():
                self.log.warning("the applier lock was lost; waiting to take it again")
                return
            # One batch at a time, applied before the next is read: under a steady
            # stream of bodies a read rarely comes back empty.
            rows = inbox.inbox_unapplied(after, TAKE)
            for row in rows:
                feed.add(row.seq, received_line(row.body, row.received_at))
                after = row.seq
            feed.release(self.clock() - self.lateness)
            upto = feed.complete_before()
            self.on_outcomes(_outcomes(feed.report, told))
            told = _copy(feed.report)
            if upto - 1 > marked:
                # A row whose last message was recorded was marked applied in that
                # transaction; the rest (messages refused unread, seen before, ignored:
                # nothing recorded) are marked here, in a write of their own only if
                # one is left (an indexed read first).
                first = inbox.inbox_unapplied(0, 1)
                if first and first[0].seq < upto:
                    inbox.inbox_mark_applied(upto, self.clock())
                marked = upto - 1
                self.say(f"ack applied {marked}")
            if len(rows) < TAKE:  # all read: wait for the next body (or the clock)
                self.wake.wait(self.poll)
                self.wake.clear()

    def _refused(self, text: str) -> None:
        self.log.warning("a message was not applied", extra={"fields": {"detail": text}})


def _outcomes(now: FeedReport, before: FeedReport) -> dict[str, int]:
    """The messages decided since `before`, by outcome (and `duplicate`)."""
    def counts(r: FeedReport) -> dict[str, int]:
        return {"applied": r.applied - r.reconciled, "reconciled": r.reconciled,
                "refused": sum(r.refused.values()), "reported": r.reported,
                "ignored": r.ignored, "duplicate": r.duplicates}
    a, b = counts(now), counts(before)
    return {k: a[k] - b[k] for k in (*OUTCOMES, "duplicate") if a[k] != b[k]}


def _copy(report: FeedReport) -> FeedReport:
    return FeedReport(applied=report.applied, reconciled=report.reconciled,
                      refused=report.refused.copy(), reported=report.reported,
                      ignored=report.ignored, duplicates=report.duplicates)


def migrate_spool(ledger: Ledger, path: Path) -> int | None:
    """Move the bodies of an earlier version's spool file into the inbox (a body there
    already is not added twice), then rename the file (and its checkpoint) with
    `.migrated`; how many bodies were read (None: no spool file).  The applier decides
    them again; their messages decided before are known by key and change nothing.  A
    torn last line was never answered success and is left out; any other line that
    cannot be read stops the start, with the file left as it was."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SettingsError(f"{path}: the spool file cannot be read: {e.strerror}; nothing "
                            "was moved into the inbox") from None
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    found: list[tuple[bytes, datetime]] = []
    for number, line in enumerate(lines, start=1):
        read = spooled(line)
        if read is None:
            if number == len(lines) and not data.endswith(b"\n"):
                break  # torn: never acknowledged
            raise SettingsError(f"{path}: line {number} is not a received body; nothing "
                                "was moved into the inbox (move the file away to start "
                                "without it)")
        found.append(read)
    for body, received_at in found:
        ledger.index.inbox_add(body, received_at)
    for old in (path, path.with_name(path.name + ".applied")):
        if old.exists():
            os.replace(old, old.with_name(old.name + ".migrated"))
    return len(found)
