"""Live Douyin pushes over HTTP (`aftersales serve-webhook`): signed, appended durably
before they are acknowledged, applied by one thread in business-time order.

A push is accepted when its `event-sign` header is the MD5 (hex) of app_key + body +
app_secret (the app's key and secret come from the environment).  An accepted body is
appended to the spool file, one line `{"received_at": …, "body": […]}` (the receive time is
the time of its messages that carry none of their own), and the file is flushed and
fsync'd: only then is
the platform answered `{"code": 0, "msg": "success"}`.  So nothing acknowledged is lost: a
crash between the answer and the ledger leaves the body in the spool, and the next start
applies it.  The applier reads the spool from its checkpoint (the first line with a
message still held, kept in `SPOOL.applied`), holds each message in the lateness window,
and applies it once `lateness` has passed on the wall clock after its business time, or
once a later message has come (as a file's feed).  Messages are idempotent by msg_id, so
lines applied again after a crash change nothing.

Answers: 200 `{"code": 0, "msg": "success"}` (appended); 401 `{"code": 40041}` for a
missing or wrong signature; 400 `{"code": 40000}` for a body that is not push messages;
413 for a body over 1 MiB; the platform sends again what is not answered code 0.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aftersales.application.ledger import Ledger
from aftersales.errors import CommandRefused, SettingsError, StoreUnavailable
from aftersales.feeds.douyin import TOLERANCE, Tolerance
from aftersales.feeds.pushes import MAX_BODY, ZONE, read_body
from aftersales.feeds.run import Feed
from aftersales.storage.retry import describe as store_error
from aftersales.storage.retry import is_store_error

KEY_ENV, SECRET_ENV = "AFTERSALES_DOUYIN_APP_KEY", "AFTERSALES_DOUYIN_APP_SECRET"


def secrets(environ: dict[str, str] | os._Environ[str] | None = None) -> tuple[str, str]:
    env = os.environ if environ is None else environ
    key, secret = env.get(KEY_ENV, ""), env.get(SECRET_ENV, "")
    if not key or not secret:
        raise SettingsError(f"serve-webhook needs the app's key and secret: set {KEY_ENV} "
                            f"and {SECRET_ENV}")
    return key, secret


def sign(key: str, body: bytes, secret: str) -> str:
    """The `event-sign` of a body: MD5 of app_key + body + app_secret, as hex."""
    return hashlib.md5(key.encode() + body + secret.encode()).hexdigest()


class Spool:
    """The received bodies, one line each, appended durably; and the applier's
    checkpoint (the number of the first line not yet wholly applied)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoint_path = path.with_name(path.name + ".applied")
        self._lock = threading.Lock()
        created = not path.exists()
        _cut_torn_tail(path)
        self._file = open(path, "ab")  # noqa: SIM115 - open for the server's life
        if created:  # the new file's name durable too
            _fsync_dir(path.parent)
        self.lines = _count_lines(path)

    def append(self, body: bytes, received_at: datetime) -> int:
        """Append one body (JSON the server has read) as one line, with the time it was
        received (the time of its messages that carry none), durably; its line number.
        The body's own bytes are kept, not a re-encoding of them (which would turn a
        number no float can hold into `Infinity`): only its line breaks, which JSON allows
        between tokens and never inside a string, become spaces."""
        kept = body.strip().replace(b"\r", b" ").replace(b"\n", b" ")
        line = (b'{"received_at":"' + received_at.isoformat().encode() + b'","body":' + kept
                + b"}")
        with self._lock:
            self._file.write(line + b"\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self.lines += 1
            return self.lines

    def read_from(self, first: int) -> list[tuple[int, bytes]]:
        """Lines `first`, `first + 1`, ... as written so far."""
        with self._lock:
            upto = self.lines
        found = []
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if number > upto:
                    break
                if number >= first:
                    found.append((number, raw))
        return found

    def checkpoint(self) -> int:
        try:
            return max(1, int(self.checkpoint_path.read_text().strip() or 1))
        except (FileNotFoundError, ValueError):
            return 1

    def keep_checkpoint(self, line: int) -> None:
        temporary = self.checkpoint_path.with_name(self.checkpoint_path.name + ".new")
        with open(temporary, "w") as f:
            f.write(f"{line}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.checkpoint_path)

    def close(self) -> None:
        self._file.close()


def _cut_torn_tail(path: Path) -> None:
    """A last line without its newline was being written when the server stopped: it was
    never answered success (that waits for the fsync of the whole line): cut it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data.endswith(b"\n"):
            return
        f.truncate(data.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


class Applier:
    """The one thread that applies the spool to the ledger, from its checkpoint."""

    def __init__(self, open_ledger: Callable[[], Ledger], spool: Spool,
                 lateness: timedelta, clock: Callable[[], datetime],
                 say: Callable[[str], None], poll: float = 0.5,
                 tolerance: Tolerance = TOLERANCE) -> None:
        self.open_ledger, self.spool, self.lateness = open_ledger, spool, lateness
        self.tolerance = tolerance
        self.clock, self.say, self.poll = clock, say, poll
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.failed: BaseException | None = None
        self.on_failure: Callable[[], None] = lambda: None
        self.thread = threading.Thread(target=self._run, name="applier", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.wake.set()
        self.thread.join()

    def _run(self) -> None:
        pause = 0.5
        while not self.stop.is_set():
            try:
                ledger = self.open_ledger()
                try:
                    self._loop(ledger)
                finally:
                    ledger.close()
            except Exception as e:
                if not (is_store_error(e) or isinstance(e, StoreUnavailable)):
                    self.failed = e  # said; the server stops (exit 3), a supervisor
                    self.say(f"aftersales: the applier stopped: {e}")  # restarts it
                    self.on_failure()
                    return
                # The store failed: what is spooled stays; start again from the
                # checkpoint once it is back (what was applied is known by its msg_id).
                self.say(f"aftersales: waiting: the store failed: {store_error(e)}; "
                         f"trying again in {pause:.1f} s")
                self.stop.wait(pause)
                pause = min(pause * 2, 30.0)

    def _loop(self, ledger: Ledger) -> None:
        feed = Feed(ledger, self.lateness, on_refused=self.say, tolerance=self.tolerance)
        next_line = checkpoint = self.spool.checkpoint()
        while not self.stop.is_set():
            for number, raw in self.spool.read_from(next_line):
                feed.add(number, raw)
                next_line = number + 1
            feed.release(self.clock() - self.lateness)
            first_held = feed.first_held()
            kept = next_line if first_held is None else first_held
            if kept != checkpoint:
                self.spool.keep_checkpoint(kept)
                checkpoint = kept
                self.say(f"ack applied {kept - 1}")
            self.wake.wait(self.poll)
            self.wake.clear()


def serve(host: str, port: int, spool: Spool, applier: Applier, key: str, secret: str,
          say: Callable[[str], None], ack: bool) -> ThreadingHTTPServer:
    """The HTTP server (not yet serving: call `serve_forever`)."""
    clock = applier.clock

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            text = self.headers.get("Content-Length") or "0"
            length = int(text) if text.strip().isdigit() else -1
            if length < 0:
                self._answer(400, {"code": 40000, "msg": "no Content-Length"})
                return
            if length > MAX_BODY:
                self._answer(413, {"code": 41300, "msg": "body too large"})
                return
            body = self.rfile.read(length)
            given = self.headers.get("event-sign", "").strip().lower()
            if not given or not hmac.compare_digest(
                    given.encode("utf-8", "replace"), sign(key, body, secret).encode()):
                self._answer(401, {"code": 40041, "msg": "missing or wrong event-sign"})
                return
            try:
                read_body(body.decode("utf-8"), kept=False)
            except (CommandRefused, UnicodeDecodeError) as e:
                self._answer(400, {"code": 40000, "msg": f"not push messages: {e}"})
                return
            if applier.failed is not None:
                self._answer(503, {"code": 50300, "msg": "the ledger is not applying"})
                return
            line = spool.append(body, clock().astimezone(ZONE))
            if ack:
                say(f"ack received {line}")
            self._answer(200, {"code": 0, "msg": "success"})
            applier.wake.set()

        def _answer(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the acks say what a test or an operator needs

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
