"""`aftersales bench`'s feed figures: a Douyin feed (`aftersales gen --platform douyin`)
ingested beside the command ingest of the same orders, as whole processes in pairs.

The baseline is the feed's own decisions written as command lines: the order export and
every command its messages became, in the order they were decided (a memory ledger
decides the feed once, here, to learn them).  Both ingests then record the same commands
into fresh SQLite files, one process each (`--workers 1`: the feed has one), so the ratio
of their CPU per command is what reading and deciding platform messages costs beyond
the command path.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aftersales.application import commands as cmd
from aftersales.application.group_commit import MessageItem
from aftersales.application.ledger import Ledger
from aftersales.devtools.douyin_feed import FeedPlan, generate
from aftersales.feeds.run import ingest_feed


class _Capturing(Ledger):
    """A ledger that keeps every command it is given or a message chooses, in order."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.seen: list[cmd.OrderCommand] = []

    def execute_batch(self, items: Sequence[cmd.OrderCommand | cmd.Tick | MessageItem]
                      ) -> list[object]:
        kept: list[cmd.OrderCommand | cmd.Tick | MessageItem] = []
        for item in items:
            if isinstance(item, MessageItem):
                item = dataclasses.replace(item, choose=self._keeping(item))
            elif isinstance(item, cmd.OrderCommand):
                self.seen.append(item)
            kept.append(item)
        return super().execute_batch(kept)

    def _keeping(self, item: MessageItem) -> Any:
        def choose(orders: Any) -> Sequence[cmd.OrderCommand]:
            chosen = item.choose(orders)
            self.seen.extend(chosen)
            return chosen
        return choose


def write_feed(orders: int, workdir: Path, seed: int = 7) -> tuple[Path, Path, int, int]:
    """The feed of `orders` orders and its command lines: their paths, and how many
    messages and commands."""
    feed = workdir / f"feed-{orders}.jsonl"
    with feed.open("w") as out:
        for line in generate(FeedPlan(orders=orders, seed=seed)):
            out.write(line + "\n")
    ledger = _Capturing("memory:")
    with feed.open("rb") as lines:
        report = ingest_feed(ledger, lines)
    ledger.close()
    commands = workdir / f"feed-commands-{orders}.jsonl"
    with commands.open("w") as out:
        for c in ledger.seen:
            out.write(c.model_dump_json(exclude_none=True) + "\n")
    return feed, commands, report.messages, len(ledger.seen)


def _cpu_run(args: list[str]) -> tuple[float, float]:
    """Run the command line as a process of its own: (wall seconds, CPU seconds)."""
    env = {k: v for k, v in os.environ.items() if k != "AFTERSALES_DB"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "aftersales", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"aftersales {' '.join(args)} exited {proc.returncode}")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def feed_figures(orders: int, workdir: Path, repeat: int,
                 fresh: Callable[[str], str], say: Callable[[str], None]) -> dict[str, Any]:
    """The feed's messages/s and CPU per command beside the command ingest of the same
    commands, `repeat` pairs (feed, then commands), medians."""
    feed, commands, messages, count = write_feed(orders, workdir)
    say(f"feed: {orders:,} orders, {messages:,} messages, {count:,} commands")
    pairs = []
    for n in range(repeat):
        f = _cpu_run(["ingest", str(feed), "--format", "douyin", "--no-project",
                      "--db", fresh("feed.db")])
        c = _cpu_run(["ingest", str(commands), "--no-project", "--workers", "1",
                      "--db", fresh("feed-commands.db")])
        pairs.append((f, c))
        say(f"feed run {n + 1}: {messages / f[0]:,.0f} messages/s, CPU ratio to the "
            f"commands {f[1] / c[1]:.2f}")
    fresh("feed.db"), fresh("feed-commands.db")  # removed
    wall, cpu = (statistics.median(f[0] for f, _ in pairs),
                 statistics.median(f[1] for f, _ in pairs))
    base_wall, base_cpu = (statistics.median(c[0] for _, c in pairs),
                           statistics.median(c[1] for _, c in pairs))
    return {"orders": orders, "messages": messages, "commands": count, "pairs": repeat,
            "messages_per_s": messages / wall, "commands_per_s": count / wall,
            "cpu_us_per_command": cpu / count * 1e6,
            "baseline_commands_per_s": count / base_wall,
            "baseline_cpu_us_per_command": base_cpu / count * 1e6,
            "cpu_ratio": statistics.median(f[1] / c[1] for f, c in pairs),
            "wall_ratio": statistics.median(f[0] / c[0] for f, c in pairs)}
