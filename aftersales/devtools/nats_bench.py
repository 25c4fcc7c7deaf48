"""`aftersales bench --nats URL`: commands per second through NATS JetStream into a ledger
of 1, 2 and 4 partitions, each beside the same run's one partition and a direct `ingest`
of the same file (these machines are noisy: compare ratios, medians of several runs).

Each run is whole processes of the real command line: `publish` the generated workload to
a stream of its own, then one `work --partition K` per partition, timed from their start
until the stream is empty (every message acknowledged: recorded); the direct ingest is
`ingest --workers 1 --no-project` of the same file into a store of its own.  The stores are
schemas of the PostgreSQL database --db names (each dropped after its run), or SQLite files
in the work directory without --db.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aftersales.devtools.workload import Workload, generate
from aftersales.settings import DEFAULT_SETTINGS
from aftersales.storage.config import postgres_target

#: The partition counts timed.
PARTITIONS = (1, 2, 4)
#: The longest a run may take before the bench gives up on it (seconds).
LIMIT = 3600.0


@dataclass
class NatsBench:
    orders: int
    workdir: Path
    nats: str
    db: str | None = None
    repeat: int = 3
    seed: int = 1
    say: Callable[[str], None] = lambda text: None

    def workload(self) -> tuple[Path, int]:
        path = self.workdir / f"workload-{self.orders}.jsonl"
        lines = 0
        with path.open("w") as out:
            for line in generate(Workload(orders=self.orders, seed=self.seed, kinds=True)):
                out.write(json.dumps(line, separators=(",", ":")) + "\n")
                lines += 1
        return path, lines

    def stores(self, n: int) -> list[str]:
        tag = uuid.uuid4().hex[:10]
        if self.db is None:
            return [f"sqlite:///{self.workdir / f'b{tag}p{k}.db'}" for k in range(n)]
        joiner = "&" if "?" in self.db else "?"
        return [f"{self.db}{joiner}schema=bench_{tag}_p{k}" for k in range(n)]

    def drop(self, urls: list[str]) -> None:
        for url in urls:
            target = postgres_target(url)
            if target is None:
                for suffix in ("", "-wal", "-shm"):
                    Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
                continue
            import psycopg
            from psycopg import sql

            from aftersales.storage.connections import connect_kwargs
            kwargs = connect_kwargs(target, DEFAULT_SETTINGS)
            with psycopg.connect(**kwargs, autocommit=True) as conn:
                for schema in (target.schema, f"{target.schema}_reporting"):
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(schema)))

    def cli(self, *args: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("AFTERSALES_DB", "AFTERSALES_PARTITIONS")}
        return subprocess.Popen([sys.executable, "-m", "aftersales", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def direct(self, path: Path) -> float:
        urls = self.stores(1)
        try:
            started = time.perf_counter()
            code = self.cli("ingest", str(path), "--db", urls[0], "--workers", "1",
                            "--no-project").wait(timeout=LIMIT)
            elapsed = time.perf_counter() - started
            if code not in (0, 1):
                raise RuntimeError(f"the direct ingest failed (exit {code})")
            return elapsed
        finally:
            self.drop(urls)

    def through_nats(self, path: Path, n: int) -> tuple[float, float]:
        """(publish seconds, work seconds) for `n` partitions."""
        urls = self.stores(n)
        where = ",".join(urls)
        stream = f"BENCH{uuid.uuid4().hex[:10].upper()}"
        try:
            started = time.perf_counter()
            code = self.cli("publish", str(path), "--nats", self.nats, "--stream", stream,
                            "--partitions", where).wait(timeout=LIMIT)
            published = time.perf_counter() - started
            if code not in (0, 1):
                raise RuntimeError(f"publish failed (exit {code})")
            # every partition's tables, before the clock starts
            self.cli("db", "init", "--partitions", where).wait(timeout=LIMIT)
            started = time.perf_counter()
            workers = [self.cli("work", "--partition", str(k), "--nats", self.nats,
                                "--stream", stream, "--partitions", where, "--poll", "0.2")
                       for k in range(n)]
            try:
                while _messages(self.nats, stream) > 0:
                    if any(w.poll() is not None for w in workers):
                        raise RuntimeError("a worker stopped")
                    if time.perf_counter() - started > LIMIT:
                        raise RuntimeError("the workers took too long")
                    time.sleep(0.05)  # a poll of the stream's count (the figure's grain)
                worked = time.perf_counter() - started
            finally:
                for w in workers:
                    w.send_signal(signal.SIGTERM)
                for w in workers:
                    w.wait(timeout=120)
            return published, worked
        finally:
            asyncio.run(_delete(self.nats, stream))
            self.drop(urls)

    def run(self) -> dict[str, Any]:
        path, lines = self.workload()
        self.say(f"workload: {self.orders:,} orders, {lines:,} lines")
        direct: list[float] = []
        nats: dict[int, list[tuple[float, float]]] = {n: [] for n in PARTITIONS}
        for r in range(self.repeat):
            self.say(f"run {r + 1}/{self.repeat}: direct ingest")
            direct.append(self.direct(path))
            for n in PARTITIONS:
                self.say(f"run {r + 1}/{self.repeat}: {n} partition(s) through NATS")
                nats[n].append(self.through_nats(path, n))
        base = statistics.median(direct)
        one = statistics.median(w for _, w in nats[1])
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                        "load_average_after": list(os.getloadavg())},
            "workload": {"orders": self.orders, "lines": lines, "repeat": self.repeat,
                         "store": "postgresql" if self.db else "sqlite"},
            "direct": {"seconds": base, "lines_per_s": lines / base},
            "partitions": {
                str(n): {"publish_seconds": statistics.median(p for p, _ in runs),
                         "work_seconds": statistics.median(w for _, w in runs),
                         "lines_per_s": lines / statistics.median(w for _, w in runs),
                         "ratio_to_one": one / statistics.median(w for _, w in runs),
                         "ratio_to_direct": base / statistics.median(w for _, w in runs)}
                for n, runs in nats.items()},
        }


def render(report: dict[str, Any]) -> str:
    m, w, d = report["machine"], report["workload"], report["direct"]
    out = [f"aftersales bench --nats, {report['date']}: {m['cores']} cores, Python "
           f"{m['python']}, {w['store']}",
           f"workload: {w['orders']:,} orders, {w['lines']:,} lines; median of "
           f"{w['repeat']}; load average after {m['load_average_after'][0]:.2f}",
           f"direct ingest (one process, one store): {d['seconds']:.1f} s, "
           f"{d['lines_per_s']:,.0f} lines/s",
           "",
           f"{'partitions':>10}{'publish s':>10}{'work s':>8}{'lines/s':>9}"
           f"{'x one':>7}{'x direct':>9}"]
    for n, f in report["partitions"].items():
        out.append(f"{n:>10}{f['publish_seconds']:>10.1f}{f['work_seconds']:>8.1f}"
                   f"{f['lines_per_s']:>9,.0f}{f['ratio_to_one']:>7.2f}"
                   f"{f['ratio_to_direct']:>9.2f}")
    return "\n".join(out)


async def _count(url: str, stream: str) -> int:
    import nats
    nc = await nats.connect(url)
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    finally:
        await nc.close()


def _messages(url: str, stream: str) -> int:
    return asyncio.run(_count(url, stream))


async def _delete(url: str, stream: str) -> None:
    import nats
    from nats.js.errors import NotFoundError
    nc = await nats.connect(url)
    try:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()
