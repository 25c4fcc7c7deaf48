"""A `serve-webhook` process for the tests: started on a free port with `--ack`, its
output read line by line, pushes signed and posted over real HTTP, and what the ledger
holds afterwards."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from aftersales import Ledger
from aftersales.application.commands import parse_command
from tests.douyin_bodies import HOUR, body, place
from tests.douyin_bodies import paid as paid_message

KEY, SECRET = "app-key", "app-secret"
ENV = {"AFTERSALES_DOUYIN_APP_KEY": KEY, "AFTERSALES_DOUYIN_APP_SECRET": SECRET}
WAIT = 60.0  # the longest a test waits for a line of the server's (a bound, not a pause)


class Server:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []  # every line, stdout and stderr
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        first = self.expect("listening on ")
        self.url = first.split()[2]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.append(line.rstrip("\n"))
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


    def get(self, path: str) -> tuple[int, str]:
        """A GET of `path` (e.g. /metrics): the status and the text answered."""
        try:
            with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=WAIT) as a:
                return a.status, a.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])


@contextmanager
def server(tmp_path: Path, db: str, *extra: str, env: dict[str, str] | None = None
           ) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"} | (
        ENV if env is None else env)
    process = subprocess.Popen(
        [sys.executable, "-m", "aftersales", "--db", db, "serve-webhook", "--port", "0",
         "--spool", str(tmp_path / "spool"), "--ack", "--log-level", "debug", *extra],
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


def received(db: str) -> int:
    """How many bodies the store's inbox holds."""
    ledger = Ledger(db)
    try:
        return ledger.index.inbox_stats().received
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


def metric(text: str, name: str, **labels: str) -> float:
    """A sample's value in a /metrics answer (0 if absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return float(sample.value)
    return 0.0
