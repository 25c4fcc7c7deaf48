"""`aftersales bench`: the standard workload's figures, each beside a baseline measured in
the same run (these machines are noisy: compare ratios, and medians of several runs).

Ingest and rebuild run as subprocesses of the real command line (their peak memory, with
the workers they start, is sampled by `aftersales.devtools.memory`); the baselines, the sweep and
as-of run in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aftersales.application.commands import OrderCommand, parse_command
from aftersales.application.ledger import Ledger
from aftersales.cli.projecting import rebuild_workers
from aftersales.devtools.feed_bench import feed_figures
from aftersales.devtools.memory import TreePeak
from aftersales.devtools.workload import START, Workload, generate
from aftersales.ingest.parallel import default_workers
from aftersales.ingest.serial import BATCH
from aftersales.storage.config import postgres_target, redacted
from aftersales.storage.sqlite_pool import PRAGMAS

TARGETS = {
    "ingest_sqlite_commands_per_s": 20_000,
    "ingest_postgres_commands_per_s": 8_000,
    "rebuild_events_per_s": 60_000,
    "sweep_seconds": 1.0,
    "asof_p50_ms_200_events": 2.0,
    "peak_memory_mb": 300,
    "feed_cpu_ratio": 1.5,
}
#: The feed's orders (at most): a Douyin feed has about seven messages an order.
FEED_ORDERS = 10_000


@dataclass
class Bench:
    orders: int
    workdir: Path
    db: str | None = None
    repeat: int = 3
    big: bool = False
    seed: int = 1
    #: Every kind of case (SPEC section 7) and deadline changes; False: the returns-only
    #: workload of earlier versions, line for line (to time old code against new).
    kinds: bool = True
    say: Callable[[str], None] = lambda text: None

    # --- the workload ------------------------------------------------------------------

    def workload(self, orders: int) -> tuple[Path, int, int]:
        """The generated command file for `orders`: path, lines, commands (not ticks)."""
        path = self.workdir / f"workload-{orders}.jsonl"
        lines = commands = 0
        with path.open("w") as out:
            for line in generate(Workload(orders=orders, seed=self.seed, kinds=self.kinds)):
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
                lines += 1
                commands += line["command"] != "tick"
        return path, lines, commands

    def fresh_sqlite(self, name: str) -> str:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.workdir / name}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{self.workdir / name}"

    # --- measurements ------------------------------------------------------------------

    def cli(self, *args: str) -> tuple[float, float]:
        """Run the command line; (seconds, peak MB of it and of the workers it starts,
        `aftersales.devtools.memory`)."""
        env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "aftersales", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with TreePeak(proc.pid) as peak:
            if proc.wait() != 0:
                raise RuntimeError(f"aftersales {' '.join(args)} exited {proc.returncode}")
        return time.perf_counter() - started, peak.megabytes

    def ingest(self, path: Path, url: str, *options: str) -> tuple[float, float]:
        return self.cli("ingest", str(path), "--no-project", "--db", url, *options)

    def rebuild(self, url: str) -> tuple[float, float]:
        return self.cli("rebuild", "--db", url)

    @staticmethod
    def event_rows(url: str) -> list[tuple[Any, ...]]:
        ledger = Ledger(url)
        rows: list[tuple[Any, ...]] = []
        start = 1
        while page := ledger.recorder.select_notifications(start, 5000):
            rows += [(str(n.originator_id).replace("-", ""), n.originator_version, n.topic,
                      n.state) for n in page]
            start = page[-1].id + 1
        ledger.close()
        return rows

    def raw_sqlite_insert(self, rows: list[tuple[Any, ...]]) -> float:
        """Rows/s of sqlite3 executemany of the same event rows in one transaction."""
        path = self.workdir / "baseline.db"
        path.unlink(missing_ok=True)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE stored_events (originator_id TEXT, originator_version "
                     "INTEGER, topic TEXT, state BLOB, PRIMARY KEY (originator_id, "
                     "originator_version))")
        started = time.perf_counter()
        with conn:
            conn.executemany("INSERT INTO stored_events VALUES (?,?,?,?)", rows)
        elapsed = time.perf_counter() - started
        conn.close()
        return len(rows) / elapsed

    def storage_floor(self, url: str) -> float:
        """Commands/s of writing the rows the ingest into `url` left (its events with their
        digests and command ids, and the deadline index and head records as they ended:
        fewer index writes than the ingest made) through sqlite3 alone: into the ledger's
        schema, with its pragmas, `BATCH` commands a transaction (the ingest's batches
        count ticks too) in key order,
        each commit durable.  No parsing, deciding or encoding: about the most an ingest
        could do."""
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as source:
            tables = [sql for sql, in source.execute(
                "SELECT sql FROM sqlite_master "
                "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite%'")]
            events = source.execute("SELECT originator_id, originator_version, topic, state, "
                                    "event_digest, log_link, prev_id, prev_version, "
                                    "prev_link "
                                    "FROM stored_events ORDER BY rowid").fetchall()
            heads = source.execute("SELECT * FROM ledger_heads").fetchall()
            commands = source.execute(
                "SELECT * FROM ledger_commands ORDER BY rowid").fetchall()
            deadlines = source.execute("SELECT * FROM ledger_deadlines").fetchall()
        path = self.fresh_sqlite("floor.db").removeprefix("sqlite:///")
        parts = max(1, round(len(commands) / BATCH))

        def part(rows: list[Any], n: int) -> list[Any]:
            return rows[n * len(rows) // parts:(n + 1) * len(rows) // parts]

        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
            for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", *PRAGMAS):
                conn.execute(pragma)
            for sql in tables:
                conn.execute(sql)
            started = time.perf_counter()
            for n in range(parts):
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO stored_events VALUES (?,?,?,?,?,?,?,?,?)",
                                 sorted(part(events, n)))
                conn.executemany("INSERT OR REPLACE INTO ledger_heads VALUES (?,?,?)",
                                 sorted(part(heads, n)))
                conn.executemany("INSERT INTO ledger_commands VALUES (?,?,?)",
                                 sorted(part(commands, n)))
                conn.executemany(
                    "INSERT OR REPLACE INTO ledger_deadlines VALUES (?,?,?,?,?,?)",
                    sorted(part(deadlines, n)))
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - started
        self.fresh_sqlite("floor.db")  # removed: it is as large as the ingest's store
        return len(commands) / elapsed

    def raw_postgres_insert(self, url: str, rows: list[tuple[Any, ...]]) -> float:
        """Rows/s of COPY of the same event rows into a scratch PostgreSQL table."""
        with _pg_connect(url) as conn:
            conn.execute("CREATE TEMP TABLE baseline_events (originator_id uuid, "
                         "originator_version bigint, topic text, state bytea, "
                         "notification_id bigserial, PRIMARY KEY (originator_id, "
                         "originator_version))")
            started = time.perf_counter()
            with conn.cursor() as cur, cur.copy(
                    "COPY baseline_events (originator_id, originator_version, topic, state) "
                    "FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
            return len(rows) / (time.perf_counter() - started)

    @staticmethod
    def read_and_decode(url: str) -> float:
        """Events/s of reading and decoding every event through the library."""
        ledger = Ledger(url)
        started = time.perf_counter()
        count = sum(1 for _ in ledger.all_events(page=500))
        elapsed = time.perf_counter() - started
        ledger.close()
        return count / elapsed

    def sweep(self, cases: int) -> dict[str, float]:
        """One sweep when `cases` return cases are open and a tenth are due: the store is
        built once, then each run sweeps a copy of it with a ledger of its own (as a
        periodic `tick` does, without the interpreter's start-up); the median."""
        url = self.fresh_sqlite("sweep.db")
        now = START + timedelta(days=30)
        ledger = Ledger(url)
        batch: list[Any] = []
        for n in range(cases):
            due = n % 10 == 0
            asked = now - timedelta(hours=49 if due else 20, minutes=n % 60)
            oid = f"S{n:07d}"
            batch += [
                {"command": "place_order", "order_id": oid, "at": asked - timedelta(days=5),
                 "payment": "online", "merchant_id": f"M{n % 500:03d}", "user_id": "U",
                 "goods_amount": 9900},
                {"command": "pay", "order_id": oid, "at": asked - timedelta(days=5)},
                {"command": "ship", "order_id": oid, "at": asked - timedelta(days=4),
                 "carrier": "SF", "tracking_no": "SF1"},
                {"command": "deliver", "order_id": oid, "at": asked - timedelta(days=2)},
                {"command": "request_return", "order_id": oid, "at": asked, "reason": "r"}]
            if len(batch) >= 2500 or n == cases - 1:
                ledger.execute_batch(_commands(batch))
                batch = []
        ledger.close()
        runs = []
        for _ in range(self.repeat):
            copy = self.fresh_sqlite("sweep-run.db")
            for suffix in ("", "-wal"):
                if Path(f"{self.workdir / 'sweep.db'}{suffix}").exists():
                    shutil.copy(f"{self.workdir / 'sweep.db'}{suffix}",
                                f"{self.workdir / 'sweep-run.db'}{suffix}")
            ledger = Ledger(copy)
            started = time.perf_counter()
            swept = ledger.tick(now)
            runs.append(time.perf_counter() - started)
            ledger.close()
        return {"open_cases": cases, "due": swept, "seconds": statistics.median(runs)}

    def as_of(self) -> dict[str, float]:
        """p50/p99 of reconstructing an order as of a random time, 10 and 200 events."""
        ledger = Ledger(self.fresh_sqlite("asof.db"))
        figures: dict[str, float] = {}
        for events in (10, 200):
            oid = f"A{events}"
            at = START
            lines = [{"command": "place_order", "order_id": oid, "at": at, "payment": "cod",
                      "merchant_id": "M", "user_id": "U", "goods_amount": 100_000},
                     {"command": "confirm_order", "order_id": oid, "at": at},
                     {"command": "ship", "order_id": oid, "at": at, "carrier": "S",
                      "tracking_no": "1"},
                     {"command": "deliver", "order_id": oid, "at": at}]
            while len(lines) < events:
                at += timedelta(hours=1)
                lines += [{"command": c, "order_id": oid, "at": at, **f} for c, f in (
                    ("request_return", {"amount": 1, "reason": "r"}),
                    ("approve_return", {}),
                    ("submit_tracking", {"carrier": "Y", "tracking_no": "2"}),
                    ("confirm_receipt", {}),
                    ("upload_refund_voucher", {"voucher_ref": "V", "amount": 1}))]
            ledger.execute_batch(_commands(lines[:events]))
            times = sorted(e.at for e in ledger.order_events(oid))
            rng = random.Random(events)
            samples = []
            for _ in range(300):
                when = times[0] + (times[-1] - times[0]) * rng.random()
                started = time.perf_counter_ns()
                ledger.order_as_of(oid, when)
                samples.append((time.perf_counter_ns() - started) / 1e6)
            samples.sort()
            figures[f"p50_ms_{events}_events"] = statistics.median(samples)
            figures[f"p99_ms_{events}_events"] = samples[int(len(samples) * 0.99) - 1]
        ledger.close()
        return figures

    # --- the run -----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine(self.db),
            "workload": {"orders": self.orders, "seed": self.seed, "repeat": self.repeat,
                         "days": Workload().days, "online_share": Workload().online_share,
                         "return_share": Workload().return_share, "kinds": self.kinds},
            "targets": TARGETS,
        }
        path, lines, commands = self.workload(self.orders)
        report["workload"].update(lines=lines, commands=commands)
        self.say(f"workload: {self.orders} orders, {lines} lines ({commands} commands)")

        runs = []
        for n in range(self.repeat):
            url = self.fresh_sqlite("ingest.db")
            seconds, peak = self.ingest(path, url)
            runs.append((seconds, peak))
            self.say(f"ingest run {n + 1}: {commands / seconds:,.0f} commands/s")
        ingest_rate = commands / statistics.median(s for s, _ in runs)
        rows = self.event_rows(url)
        baseline = statistics.median(self.raw_sqlite_insert(rows) for _ in range(self.repeat))
        floor = statistics.median(self.storage_floor(url) for _ in range(self.repeat))
        report["ingest_sqlite"] = {
            "commands_per_s": ingest_rate, "events": len(rows),
            "workers": default_workers(path.stat().st_size),
            "baseline_raw_insert_rows_per_s": baseline, "ratio": ingest_rate / baseline,
            "storage_floor_commands_per_s": floor, "floor_ratio": floor / baseline,
            "peak_memory_mb": max(p for _, p in runs)}
        self.say(f"raw executemany baseline: {baseline:,.0f} rows/s; storage floor "
                 f"{floor:,.0f} commands/s")

        rebuilds = [self.rebuild(url) for _ in range(self.repeat)]
        rebuild_rate = len(rows) / statistics.median(s for s, _ in rebuilds)
        decode = statistics.median(self.read_and_decode(url) for _ in range(self.repeat))
        report["rebuild_sqlite"] = {
            "events_per_s": rebuild_rate, "baseline_read_decode_events_per_s": decode,
            "workers": rebuild_workers(len(rows)),
            "ratio": rebuild_rate / decode,
            "peak_memory_mb": max(p for _, p in rebuilds)}
        self.say(f"rebuild: {rebuild_rate:,.0f} events/s; read+decode {decode:,.0f}/s")

        if self.db and postgres_target(self.db):
            report["postgres"] = self.postgres(path, rows, commands)

        report["sweep"] = self.sweep(self.orders)
        self.say(f"sweep: {report['sweep']['due']} due of {self.orders} in "
                 f"{report['sweep']['seconds']:.2f}s")
        report["as_of"] = self.as_of()

        scaling = {}
        for n in [self.orders // 10, self.orders] + ([self.orders * 10] if self.big else []):
            if n == self.orders:
                scaling[str(n)] = {"ingest_commands_per_s": ingest_rate,
                                   "rebuild_events_per_s": rebuild_rate,
                                   "ingest_peak_mb": report["ingest_sqlite"]["peak_memory_mb"],
                                   "rebuild_peak_mb": report["rebuild_sqlite"]["peak_memory_mb"]}
                continue
            p, _, c = self.workload(n)
            u = self.fresh_sqlite(f"scale-{n}.db")
            si, mi = self.ingest(p, u)
            events = count_events(u)
            sr, mr = self.rebuild(u)
            scaling[str(n)] = {"ingest_commands_per_s": c / si, "rebuild_events_per_s":
                               events / sr, "ingest_peak_mb": mi, "rebuild_peak_mb": mr}
            self.say(f"scale {n}: ingest {c / si:,.0f}/s, rebuild {events / sr:,.0f}/s")
        report["scaling"] = scaling
        # Last: deciding the feed once in this process (to learn its commands) leaves a
        # heap that slowed the in-process sweep and as-of measured after it by a fifth.
        report["feed_sqlite"] = feed_figures(min(self.orders, FEED_ORDERS), self.workdir,
                                             self.repeat, self.fresh_sqlite, self.say)
        return report

    def postgres(self, path: Path, rows: list[tuple[Any, ...]], commands: int
                 ) -> dict[str, float]:
        """The whole workload, ticks included, ingested by two processes (`--workers 2`:
        the orders split between them)."""
        assert self.db is not None
        runs = []
        for n in range(self.repeat):
            url = _fresh_schema(self.db, f"bench_{os.getpid()}_{n}")
            seconds, _ = self.ingest(path, url, "--workers", "2")
            runs.append(commands / seconds)
            self.say(f"postgres ingest run {n + 1}: {runs[-1]:,.0f} commands/s (2 processes)")
        baseline = statistics.median(self.raw_postgres_insert(url, rows)
                                     for _ in range(self.repeat))
        seconds, peak = self.rebuild(url)
        events = count_events(url)
        _drop_schemas(self.db, [f"bench_{os.getpid()}_{n}" for n in range(self.repeat)])
        return {"ingest_commands_per_s_2_processes": statistics.median(runs),
                "baseline_copy_rows_per_s": baseline,
                "ratio": statistics.median(runs) / baseline,
                "rebuild_events_per_s": events / seconds, "rebuild_peak_memory_mb": peak}


def _commands(lines: list[dict[str, Any]]) -> list[OrderCommand]:
    """Command-file lines (with datetimes) as parsed order commands."""
    parsed: list[OrderCommand] = []
    for line in lines:
        command = parse_command(json.dumps(
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in line.items()}))
        assert isinstance(command, OrderCommand)
        parsed.append(command)
    return parsed


def count_events(url: str) -> int:
    ledger = Ledger(url)
    try:
        return ledger.recorder.max_notification_id() or 0
    finally:
        ledger.close()


def _fresh_schema(url: str, schema: str) -> str:
    target = postgres_target(url)
    assert target is not None
    return target.url.update_query_dict({"schema": schema}).render_as_string(
        hide_password=False)


def _pg_connect(url: str, autocommit: bool = False) -> Any:
    """A plain psycopg connection to the database a PostgreSQL store URL names."""
    import psycopg

    target = postgres_target(url)
    assert target is not None
    u = target.url
    return psycopg.connect(host=u.host or "127.0.0.1", port=u.port or 5432,
                           user=u.username or "postgres", password=u.password or "",
                           dbname=u.database, autocommit=autocommit)


def _drop_schemas(url: str, schemas: list[str]) -> None:
    from psycopg import sql

    with _pg_connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


def machine(db: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "sqlite": sqlite3.sqlite_version,
    }
    if db and postgres_target(db):
        ledger = Ledger(db)
        with ledger.recorder.datastore.transaction(commit=False) as curs:  # type: ignore[attr-defined]
            curs.execute("SHOW server_version")
            info["postgresql"] = curs.fetchone()["server_version"]
        ledger.close()
        info["postgresql_url"] = redacted(db)
    return info


def render(report: dict[str, Any]) -> str:
    """The figures beside their targets and same-run baselines."""
    i, r, s, a, f = (report["ingest_sqlite"], report["rebuild_sqlite"], report["sweep"],
                     report["as_of"], report["feed_sqlite"])
    lines = [
        f"aftersales bench, {report['date']}: {report['machine']['cores']} cores, Python "
        f"{report['machine']['python']}, SQLite {report['machine']['sqlite']}",
        f"workload: {report['workload']['orders']:,} orders, "
        f"{report['workload']['commands']:,} commands, median of "
        f"{report['workload']['repeat']}",
        f"ingest SQLite     {i['commands_per_s']:>10,.0f} commands/s  (target 20,000; raw "
        f"executemany {i['baseline_raw_insert_rows_per_s']:,.0f} rows/s, ratio "
        f"{i['ratio']:.2f}, target 0.33; {i['workers']} processes)",
        f"storage floor     {i['storage_floor_commands_per_s']:>10,.0f} commands/s  (the "
        f"ingest's rows through sqlite3 alone; ratio {i['floor_ratio']:.2f})",
        f"feed SQLite       {f['messages_per_s']:>10,.0f} messages/s  ({f['commands_per_s']:,.0f}"
        f" commands/s; the same commands as command lines {f['baseline_commands_per_s']:,.0f}"
        f"/s; CPU per command {f['cpu_us_per_command']:.0f} us against "
        f"{f['baseline_cpu_us_per_command']:.0f} us, ratio {f['cpu_ratio']:.2f}, target "
        f"1.5; {f['orders']:,} orders, one process each)",
        f"rebuild SQLite    {r['events_per_s']:>10,.0f} events/s    (target 60,000; "
        f"read+decode {r['baseline_read_decode_events_per_s']:,.0f}/s, ratio "
        f"{r['ratio']:.2f}, target 0.5; {r['workers']} processes)",
        f"sweep             {s['seconds']:>10.2f} s           ({s['due']:,} due among "
        f"{s['open_cases']:,} open; target < 1 s for 10,000 among 100,000)",
        f"as-of 10 events   p50 {a['p50_ms_10_events']:.2f} ms, p99 "
        f"{a['p99_ms_10_events']:.2f} ms",
        f"as-of 200 events  p50 {a['p50_ms_200_events']:.2f} ms, p99 "
        f"{a['p99_ms_200_events']:.2f} ms (target p50 < 2 ms)",
        f"peak memory       ingest {i['peak_memory_mb']:.0f} MB, rebuild "
        f"{r['peak_memory_mb']:.0f} MB (target < 300 MB at 1,000,000 orders)",
    ]
    if "postgres" in report:
        p = report["postgres"]
        lines.append(
            f"ingest PostgreSQL {p['ingest_commands_per_s_2_processes']:>10,.0f} commands/s "
            f"with 2 processes (target 8,000; COPY {p['baseline_copy_rows_per_s']:,.0f} "
            f"rows/s, ratio {p['ratio']:.2f}); rebuild {p['rebuild_events_per_s']:,.0f} "
            "events/s")
    for n, f in report["scaling"].items():
        lines.append(f"scale {int(n):>9,} orders: ingest {f['ingest_commands_per_s']:,.0f}"
                     f"/s ({f['ingest_peak_mb']:.0f} MB), rebuild "
                     f"{f['rebuild_events_per_s']:,.0f}/s ({f['rebuild_peak_mb']:.0f} MB)")
    return "\n".join(lines)
