"""`aftersales bench --webhook`: a load benchmark of `aftersales serve-webhook`, beside the
plain command ingest of the same payments measured in the same run (these machines are
noisy: compare the ratio, and medians of several runs).

For each store (SQLite in the work directory; PostgreSQL too when `--db postgresql://…` is
given, a fresh schema per run) and each number of clients, on a fresh store:

- the workload's orders are placed (their `place_order` lines through `aftersales
  ingest`'s serial ingest, in this process; one sub-order each, 19-digit Douyin ids);
- the real server is started as a subprocess (`serve-webhook --port 0 --lateness 0 --ack`,
  the app's key and secret in its environment);
- N client threads, each with one kept-alive HTTP/1.1 connection (`http.client`), post a
  signed TradePaid (101) body per order, in the platform's real shapes (both envelope
  spellings, ids as numbers and as numeric strings), each body sent once;
- measured: bodies answered per second (first request sent to last answer read), p50 and
  p99 of the answer time, answers other than 200 and connection errors (both must be 0),
  messages applied per second (first request sent to the server's `ack applied <last
  seq>`), the applier's rate once every body was answered, the server's CPU time;
  afterwards the store's inbox and its payments are counted.

The baseline: the same payments as `pay` commands, ingested into a fresh store with the
same orders placed, by the code `aftersales ingest FILE` runs (its serial ingest, default
batch) in this process, timed from the store opened to the ingest done (a process's start,
more than a second here, would otherwise be most of it); and once as a whole process.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aftersales.application.clock import guard_for
from aftersales.application.ledger import Ledger
from aftersales.devtools.bench import _drop_schemas, _fresh_schema, machine
from aftersales.devtools.douyin_feed import MERCHANT, ORDER_STATUS, SHOP_ID
from aftersales.feeds.webhook import KEY_ENV, SECRET_ENV, sign
from aftersales.ingest.serial import ingest
from aftersales.settings import Settings
from aftersales.storage.config import postgres_target, redacted

KEY, SECRET = "bench-app-key", "bench-app-secret"
CLIENTS = (8, 32, 64)
#: The first sub-order id (above 2^53, as the platform's are) and the first message id.
FIRST_ORDER = 4_835_804_142_146_700_000
FIRST_MESSAGE = 7_213_000_000_000_000_000
_APPLIED = re.compile(r"ack applied (\d+)")
#: The longest the bench waits for the server's start, a line of it, or its stop.
WAIT = 120.0


# --- the workload ------------------------------------------------------------------------

@dataclass(frozen=True)
class Orders:
    """The orders of one run, placed two hours ago and paid one hour ago (a live feed: with
    `--lateness 0` each payment may be applied as soon as it is received)."""

    count: int
    now: datetime

    @property
    def placed_at(self) -> datetime:
        return self.now - timedelta(hours=2)

    @property
    def paid_at(self) -> datetime:
        return self.now - timedelta(hours=1)

    def order_id(self, n: int) -> int:
        return FIRST_ORDER + n

    def place_lines(self) -> list[str]:
        return [json.dumps({
            "command": "place_order", "order_id": str(self.order_id(n)),
            "at": self.placed_at.isoformat(), "payment": "online", "merchant_id": MERCHANT,
            "user_id": f"BUYER-{n}", "goods_amount": 9900, "postage": 600},
            separators=(",", ":")) for n in range(self.count)]

    def pay_lines(self) -> list[str]:
        """The baseline: each body's payment as the command the ledger gets from it."""
        return [json.dumps({"command": "pay", "order_id": str(self.order_id(n)),
                            "at": self.paid_at.isoformat()}, separators=(",", ":"))
                for n in range(self.count)]

    def bodies(self) -> list[bytes]:
        """One push body per order: a TradePaid (101), as the platform sends it."""
        return [paid_body(self.order_id(n), str(FIRST_MESSAGE + n), self.paid_at,
                          official=n % 2 == 0, ids_as_text=n % 4 in (1, 2))
                for n in range(self.count)]


def paid_body(order_id: int, msg_id: str, at: datetime, *, official: bool,
              ids_as_text: bool) -> bytes:
    """A body of one TradePaid (101) message of a single-sub-order parent (its `p_id` is
    the sub-order's id), paid online.  `official`: the tag a string, `msg_id`, `data` a
    JSON string; otherwise the tag a number, `msgId`, `data` an object."""
    ident: Callable[[int], int | str] = str if ids_as_text else int
    data = {"p_id": ident(order_id), "s_ids": [ident(order_id)], "shop_id": ident(SHOP_ID),
            "order_status": ORDER_STATUS[101], "order_type": 0, "biz": 2,
            "pay_time": int(at.timestamp()), "pay_type": 1, "pay_amount": 10500}
    message: dict[str, Any] = (
        {"tag": "101", "msg_id": msg_id,
         "data": json.dumps(data, ensure_ascii=False, separators=(",", ":"))}
        if official else {"tag": 101, "msgId": msg_id, "data": data})
    return json.dumps([message], ensure_ascii=False, separators=(",", ":")).encode()


# --- the server --------------------------------------------------------------------------

class Server:
    """`aftersales serve-webhook` as a subprocess: its stdout read line by line (the `ack
    applied N` lines timed as they arrive), its stderr to a file."""

    def __init__(self, url: str, workdir: Path, name: str, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("AFTERSALES_DB", KEY_ENV + "_FILE", SECRET_ENV + "_FILE")}
        env |= {KEY_ENV: KEY, SECRET_ENV: SECRET}
        self.log = (workdir / f"{name}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aftersales", "--db", url, "serve-webhook", "--port", "0",
             "--lateness", "0", "--ack", "--spool", str(workdir / f"{name}.spool"),
             *extra],
            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.applied = 0
        self.applied_at = 0.0
        self.first_applied_at: float | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()  # None: its output ended
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        try:
            first = self.expect("listening on ")
        except RuntimeError:
            self.process.kill()
            self.stop()
            raise
        self.host, port = first.split()[2].removeprefix("http://").rstrip("/").rsplit(":", 1)
        self.port = int(port)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.rstrip("\n")
            # The server's threads print their lines each in two writes (the text, then
            # its line break), so two lines may come run together: `ack applied 7ack
            # received 9`.
            applied = [int(n) for n in _APPLIED.findall(line)]
            if applied:
                with self.changed:
                    self.applied = max(self.applied, *applied)
                    self.applied_at = time.perf_counter()
                    if self.applied and self.first_applied_at is None:
                        self.first_applied_at = self.applied_at
                    self.changed.notify_all()
            if not line.startswith("ack "):
                self.lines.put(line)
        self.lines.put(None)
        with self.changed:
            self.changed.notify_all()

    def expect(self, start: str) -> str:
        while True:
            try:
                line = self.lines.get(timeout=WAIT)
            except queue.Empty:
                raise RuntimeError(f"serve-webhook said no {start!r} within {WAIT:.0f} s "
                                   f"(see {self.log.name})") from None
            if line is None:
                raise RuntimeError(f"serve-webhook ended before saying {start!r} (exit "
                                   f"{self.process.wait()}; see {self.log.name})")
            if line.startswith(start):
                return line

    def wait_applied(self, seq: int, timeout: float) -> tuple[int, float]:
        """Wait until the server says `ack applied` of `seq` or later (or `timeout`
        passes, or it exits); the last seq it said applied, and when."""
        deadline = time.perf_counter() + timeout
        with self.changed:
            while self.applied < seq and self.process.poll() is None:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self.changed.wait(min(left, 1.0))
            return self.applied, self.applied_at

    def cpu_seconds(self) -> float | None:
        """User and system CPU the server has used so far (Linux; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1]
        except OSError:
            return None
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        """SIGTERM, and its exit code (killed after WAIT)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.reader.join(timeout=WAIT)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.log.close()
        return code


# --- the clients -------------------------------------------------------------------------

class Connection(http.client.HTTPConnection):
    """A kept-alive HTTP/1.1 connection with `TCP_NODELAY`: `http.client` writes a
    request's head and its body in two sends, and with Nagle's algorithm the body could
    wait for the head's acknowledgement, which the server's TCP may delay by 40 ms (the
    client's own delay is not the server's to measure)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class Posted:
    """What the clients saw: seconds from the first request sent to the last answer read,
    each answer's time (ms; 200s only), the other statuses, the connection errors."""

    seconds: float = 0.0
    started: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unsent: int = 0  # bodies given up after three connection errors in a row
    client_cpu_seconds: float = 0.0


def post_all(host: str, port: int, bodies: Sequence[bytes], clients: int) -> Posted:
    """Each body posted once (again on a new connection only after a connection error),
    by `clients` threads, each with one kept-alive connection, taking the next body as it
    is free."""
    signed = [(b, sign(KEY, b, SECRET)) for b in bodies]
    following = itertools.count()
    lock = threading.Lock()
    result = Posted()
    ready = threading.Barrier(clients + 1)

    def client() -> None:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        unsent = 0
        conn = Connection(host, port, timeout=WAIT)
        with suppress(OSError):
            conn.connect()  # before the clock starts (an error here: on the first post)
        ready.wait()
        while (n := next(following)) < len(signed):
            body, signature = signed[n]
            for _attempt in range(3):
                started = time.perf_counter()
                try:
                    conn.request("POST", "/", body, {"event-sign": signature,
                                                     "Content-Type": "application/json"})
                    answer = conn.getresponse()
                    answer.read()
                except (OSError, http.client.HTTPException) as e:
                    errors[type(e).__name__] += 1
                    conn.close()
                    conn = Connection(host, port, timeout=WAIT)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[answer.status] += 1
                if answer.will_close:  # the server ended the connection (not an error)
                    conn.close()
                    conn = Connection(host, port, timeout=WAIT)
                break
            else:
                unsent += 1
        conn.close()
        with lock:
            result.latencies += latencies
            result.statuses.update(statuses)
            result.errors.update(errors)
            result.unsent += unsent

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    cpu = time.process_time()
    result.started = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - result.started
    result.client_cpu_seconds = time.process_time() - cpu
    result.connection_errors = sum(result.errors.values())
    return result


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


# --- the run -----------------------------------------------------------------------------

@dataclass
class WebhookBench:
    bodies: int
    workdir: Path
    db: str | None = None
    clients: tuple[int, ...] = CLIENTS
    repeat: int = 1
    say: Callable[[str], None] = lambda text: None
    _schemas: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> float:
        """Run the command line; its wall seconds."""
        env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "aftersales", *args], env=env,
                              cwd=self.workdir, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"aftersales {' '.join(args)} exited {done.returncode}: "
                               f"{done.stderr[-2000:]}")
        return time.perf_counter() - started

    def write(self, name: str, lines: list[str]) -> Path:
        path = self.workdir / name
        path.write_text("".join(line + "\n" for line in lines))
        return path

    def fresh(self, store: str, name: str) -> str:
        """A store URL no run used: a SQLite file in the work directory, or a schema of
        its own in the PostgreSQL database (dropped at the end)."""
        if store == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.workdir / name}.db{suffix}").unlink(missing_ok=True)
            return f"sqlite:///{self.workdir / name}.db"
        assert self.db is not None
        schema = f"bench_webhook_{os.getpid()}_{len(self._schemas)}"
        self._schemas.append(schema)
        _drop_schemas(self.db, [schema])
        return _fresh_schema(self.db, schema)

    @staticmethod
    def ledger(url: str) -> Ledger:
        """The ledger as `aftersales ingest` opens it (the settings of the environment)."""
        settings = Settings.from_env()
        return Ledger(url, settings=settings, guard=guard_for(settings))

    def ingest_file(self, url: str, path: Path) -> float:
        """`aftersales ingest`'s serial ingest (default batch) of a command file into
        `url`, in this process: the seconds of the ingest, the store already open."""
        ledger = self.ledger(url)
        try:
            with path.open("rb") as lines:
                started = time.perf_counter()
                report = ingest(ledger, lines, lambda n, e: None)
                elapsed = time.perf_counter() - started
        finally:
            ledger.close()
        if report.refused or report.stopped:
            raise RuntimeError(f"ingest of {path.name} into {redacted(url)}: "
                               f"{report.summary()}")
        return elapsed

    def baseline(self, store: str, orders: Orders, places: Path) -> dict[str, Any]:
        """The same payments as `pay` commands, ingested into a fresh store with the same
        orders placed: by `aftersales ingest`'s serial ingest in this process (the median
        of at least 3 runs), and once by the command as a whole process."""
        pays = self.write("pays.jsonl", orders.pay_lines())
        runs = []
        for n in range(max(3, self.repeat)):
            url = self.fresh(store, f"ingest-{n}")
            self.ingest_file(url, places)
            runs.append(self.ingest_file(url, pays))
            if store == "sqlite":
                self.fresh(store, f"ingest-{n}")  # removed
        url = self.fresh(store, "ingest-process")
        self.ingest_file(url, places)
        process = self.cli("ingest", str(pays), "--no-project", "--db", url)
        seconds = statistics.median(runs)
        figures = {"commands": orders.count, "seconds": seconds, "runs": len(runs),
                   "commands_per_s": orders.count / seconds,
                   "process_seconds": process,
                   "commands_per_s_whole_process": orders.count / process}
        self.say(f"{store}: ingest of {orders.count} pay commands: "
                 f"{figures['commands_per_s']:,.0f}/s ({process:.2f} s as a whole process)")
        return figures

    def one_run(self, store: str, clients: int, n: int, orders: Orders, places: Path,
                bodies: list[bytes]) -> dict[str, Any]:
        url = self.fresh(store, f"webhook-{clients}-{n}")
        self.ingest_file(url, places)
        server = Server(url, self.workdir, f"server-{store}-{clients}-{n}")
        try:
            cpu_before = server.cpu_seconds()
            posted = post_all(server.host, server.port, bodies, clients)
            applied_when_answered = server.applied
            answered = posted.statuses.get(200, 0)
            last, applied_at = server.wait_applied(
                answered, timeout=WAIT + len(bodies) / 20)
            cpu_after = server.cpu_seconds()
        finally:
            code = server.stop()
        applied_seconds = (applied_at - posted.started if answered and last >= answered
                           else None)
        stored = _stored(url)
        run = {
            "clients": clients, "bodies": len(bodies),
            "answered_per_s": len(posted.latencies) / posted.seconds,
            "answer_seconds": posted.seconds,
            "p50_ms": percentile(posted.latencies, 50),
            "p99_ms": percentile(posted.latencies, 99),
            "max_ms": max(posted.latencies, default=0.0),
            "answered_200": answered,
            "non_200": sum(c for s, c in posted.statuses.items() if s != 200),
            "statuses": {str(s): c for s, c in sorted(posted.statuses.items())},
            "connection_errors": posted.connection_errors,
            "errors": dict(posted.errors), "unsent": posted.unsent,
            "last_applied_seq": last,
            "applied_seconds": applied_seconds,
            "applied_per_s": (answered / applied_seconds) if applied_seconds else None,
            # when the server first said a body was applied (from the first request)
            "first_applied_seconds": (server.first_applied_at - posted.started
                                      if server.first_applied_at is not None else None),
            # the applier's rate once every body was answered, where at least half of
            # them were still to be applied then (fewer: a round begun before, too short)
            "applied_when_answered": applied_when_answered,
            "applied_after_answers_per_s": (
                (answered - applied_when_answered) / (applied_seconds - posted.seconds)
                if applied_seconds and 2 * (answered - applied_when_answered) >= answered
                and applied_seconds > posted.seconds else None),
            "server_cpu_seconds": (cpu_after - cpu_before
                                   if cpu_before is not None and cpu_after is not None
                                   else None),
            "client_cpu_seconds": posted.client_cpu_seconds,
            "server_exit": code,
            **stored,
        }
        self.say(f"{store}, {clients} clients, run {n + 1}: {run['answered_per_s']:,.0f} "
                 f"answered/s (p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms), "
                 f"applied {last} "
                 + (f"({run['applied_per_s']:,.0f}/s)" if run["applied_per_s"] else
                    "(not all)")
                 + f"; {run['non_200']} not 200, {run['connection_errors']} connection "
                 "errors")
        return run

    def store_figures(self, store: str, now: datetime) -> dict[str, Any]:
        orders = Orders(self.bodies, now)
        places = self.write("places.jsonl", orders.place_lines())
        bodies = orders.bodies()
        figures: dict[str, Any] = {"ingest": self.baseline(store, orders, places),
                                   "clients": {}}
        for clients in self.clients:
            runs = [self.one_run(store, clients, n, orders, places, bodies)
                    for n in range(self.repeat)]
            figures["clients"][str(clients)] = _median_of(runs)
        return figures

    def run(self) -> dict[str, Any]:
        now = datetime.now(UTC).replace(microsecond=0)
        sample = Orders(1, now).bodies()[0]
        report: dict[str, Any] = {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine(self.db),
            "workload": {"bodies": self.bodies, "messages_per_body": 1,
                         "tag": 101, "body_bytes": len(sample), "clients": list(self.clients),
                         "repeat": self.repeat, "lateness": 0},
            "stores": {},
        }
        stores = ["sqlite"] + (["postgresql"] if self.db and postgres_target(self.db) else [])
        report["machine"]["load_average_before"] = _load()
        try:
            for store in stores:
                report["stores"][store] = self.store_figures(store, now)
        finally:
            if self._schemas:
                assert self.db is not None
                _drop_schemas(self.db, self._schemas)
        report["machine"]["load_average_after"] = _load()
        return report


def _load() -> list[float] | None:
    """The machine's load average over 1, 5 and 15 minutes (other work on it)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _stored(url: str) -> dict[str, int]:
    """What the store holds after a run: its inbox, and the payments in its ledger."""
    ledger = Ledger(url, create_tables=False)
    try:
        stats = ledger.index.inbox_stats()
        payments = sum(1 for e in ledger.all_events()
                       if type(e).__name__ == "PaymentReceived")
    finally:
        ledger.close()
    return {"inbox_received": stats.received, "inbox_applied": stats.applied,
            "inbox_backlog": stats.backlog, "payments": payments}


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of several runs: the median of each rate and time, the sum of each count of what
    went wrong, the least of what was applied; every run beside."""
    if len(runs) == 1:
        return {**runs[0], "runs": 1}
    out = dict(runs[-1])
    for name in ("answered_per_s", "answer_seconds", "p50_ms", "p99_ms", "max_ms",
                 "applied_seconds", "applied_per_s", "applied_after_answers_per_s",
                 "applied_when_answered", "first_applied_seconds", "server_cpu_seconds",
                 "client_cpu_seconds"):
        values = [r[name] for r in runs if r[name] is not None]
        out[name] = statistics.median(values) if values else None
    for name in ("non_200", "connection_errors", "unsent"):
        out[name] = sum(r[name] for r in runs)
    for name in ("answered_200", "last_applied_seq", "inbox_received", "inbox_applied",
                 "payments"):
        out[name] = min(r[name] for r in runs)
    out["server_exit"] = max(r["server_exit"] for r in runs)
    out["runs"] = len(runs)
    out["each"] = runs
    return out


def complete(report: dict[str, Any]) -> bool:
    """Whether every body of every run was answered 200 and applied, with no connection
    error, and every server stopped cleanly."""
    return all(
        r["non_200"] == 0 and r["connection_errors"] == 0 and r["unsent"] == 0
        and r["answered_200"] == r["bodies"] and r["payments"] == r["bodies"]
        and r["inbox_applied"] == r["bodies"] and r["server_exit"] == 0
        for s in report["stores"].values() for r in s["clients"].values())


STORE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
LEGEND = (
    "answered/s: bodies answered a second, first request sent to last answer read; p50, "
    "p99: answer times",
    "applied/s: first request sent to the server's `ack applied` of the last body",
    "ingest/s: the same run's `aftersales ingest` of the same payments as `pay` commands; "
    "ratio: applied/ingest",
    "alone/s: the applier's rate once every body was answered (if half or more were "
    "unapplied then)",
    "@last: bodies applied when the last was answered; CPU ms: the server's CPU time per "
    "body",
)


def render(report: dict[str, Any]) -> str:
    """The table: each store and number of clients, beside the same-run ingest."""
    m, w = report["machine"], report["workload"]
    lines = [
        f"aftersales bench --webhook, {report['date']}: {m['cores']} cores, Python "
        f"{m['python']}, SQLite {m['sqlite']}"
        + (f", PostgreSQL {m['postgresql']}" if "postgresql" in m else ""),
        f"workload: {w['bodies']:,} bodies of one TradePaid (101) message "
        f"({w['body_bytes']} bytes) to as many orders, serve-webhook --lateness 0; "
        f"median of {w['repeat']}"
        + (f"; load average {m['load_average_before'][0]:.2f} before, "
           f"{m['load_average_after'][0]:.2f} after" if m.get("load_average_after") else ""),
        "",
        f"{'store':<11}{'clients':>8}{'answered/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'non-200':>8}{'conn err':>9}{'applied/s':>10}{'applied':>8}{'ingest/s':>9}"
        f"{'ratio':>7}{'alone/s':>8}{'@last':>7}{'CPU ms':>8}",
    ]
    for store, figures in report["stores"].items():
        base = figures["ingest"]["commands_per_s"]
        for clients, r in figures["clients"].items():
            rate, alone, cpu = (r["applied_per_s"], r["applied_after_answers_per_s"],
                                r["server_cpu_seconds"])
            lines.append(
                f"{STORE_NAMES[store]:<11}{clients:>8}{r['answered_per_s']:>11,.0f}"
                f"{r['p50_ms']:>8.1f}{r['p99_ms']:>8.1f}{r['non_200']:>8}"
                f"{r['connection_errors']:>9}"
                + (f"{rate:>10,.0f}" if rate else f"{'-':>10}")
                + f"{r['payments']:>8,}{base:>9,.0f}"
                + (f"{rate / base:>7.2f}" if rate else f"{'-':>7}")
                + (f"{alone:>8,.0f}" if alone else f"{'-':>8}")
                + f"{r['applied_when_answered']:>7,}"
                + (f"{cpu / r['bodies'] * 1000:>8.1f}" if cpu is not None else f"{'-':>8}"))
    lines += ["", *LEGEND, ""]
    for store, figures in report["stores"].items():
        i = figures["ingest"]
        lines.append(
            f"ingest baseline, {STORE_NAMES[store]}: {i['commands']:,} pay commands in "
            f"{i['seconds']:.3f} s ({i['commands_per_s']:,.0f}/s; median of {i['runs']}); "
            f"as a whole process {i['process_seconds']:.2f} s "
            f"({i['commands_per_s_whole_process']:,.0f}/s)")
    if not complete(report):
        lines.append("NOT COMPLETE: a body was not answered 200 or not applied, a "
                     "connection failed, or a server did not stop cleanly (see --json)")
    return "\n".join(lines)
