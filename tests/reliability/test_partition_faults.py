"""A partitioned ledger fed through NATS JetStream, with its parts failing: a worker killed
(SIGKILL) at a random point and started again, the NATS server (the test's own) restarted
under a running worker, and one partition's PostgreSQL (a cluster of the test's own)
stopped and started under its worker.  The end state equals the uninterrupted run's, one
ledger's; and `verify` names the partition and the order when one partition's history is
altered."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.conftest import PG_URL, drop_schema, require_postgres
from tests.faults import Cluster, Store, cluster  # noqa: F401
from tests.integration.test_partitions import (  # noqa: F401
    B1,
    B3,
    _same,
    one_ledger,
    publish_and_work,
    workload,
)
from tests.nats_server import NatsServer, nats_server, run_async, wait_for  # noqa: F401
from tests.reliability.snapshot import Snapshot, cli, env, partitioned_snapshot, run_cli

pytestmark = pytest.mark.slow


class Worker:
    """`aftersales work` for one partition, its acknowledgements read as they come."""

    def __init__(self, partition: int, where: str, server: NatsServer, folder: Path) -> None:
        #: Its JSON log lines (said when the test fails).
        self.log = folder / f"work-{partition}.log"
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                cli("work", "--partition", str(partition), "--nats", server.url,
                    "--partitions", where, "--batch", "20", "--ack"),
                cwd=folder, env=env(), stdout=subprocess.PIPE, stderr=log, text=True)

    def acks(self, count: int) -> None:
        """Read until `count` more acknowledgements came (or the stream's end for it)."""
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        seen = 0
        while seen < count:
            line = out.readline()
            if not line:
                return
            seen += line.startswith("ack message ")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=60)
        self._close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        self._close()
        return code

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def two_partitions(cluster: Cluster) -> Iterator[list[str]]:  # noqa: F811
    """Partition 0 in a schema of the shared server, partition 1 on the test's own
    cluster."""
    require_postgres()
    first = f"{PG_URL}?schema=t_{uuid.uuid4().hex[:12]}"
    try:
        yield [first, cluster.url]
    finally:
        drop_schema(first)


def test_a_killed_worker_a_restarted_nats_and_a_stopped_partition_change_nothing(
        two_partitions: list[str], cluster: Cluster, nats_server: NatsServer,  # noqa: F811
        workload: tuple[Path, Path], one_ledger: Snapshot, tmp_path: Path) -> None:  # noqa: F811
    seed = random.randrange(10**6)
    chance = random.Random(seed)
    urls, where = two_partitions, ",".join(two_partitions)
    commands, feed = workload
    for args in (("publish", str(commands)), ("publish", str(feed), "--format", "douyin")):
        done = run_cli(*args, "--nats", nats_server.url, "--partitions", where, cwd=tmp_path)
        assert done.returncode == 0, done.stderr

    first = Worker(0, where, nats_server, tmp_path)  # killed at a random point
    first.acks(chance.randint(1, 8))
    first.kill()

    second = Worker(1, where, nats_server, tmp_path)
    second.acks(chance.randint(1, 4))
    cluster.stop()  # partition 1's server, under its worker
    cluster.start()
    second.acks(1)  # it took up its work again
    nats_server.stop()  # the NATS server, under the running worker
    nats_server.start()
    again = Worker(0, where, nats_server, tmp_path)
    try:
        wait_for(lambda: nats_server.messages("AFTERSALES") == 0,
                 f"the workers to take every message (seed {seed}; their logs: "
                 f"{again.log.read_text()[-3000:]})", limit=120)
    finally:
        stopped = [again.stop(), second.stop()]
    assert stopped == [0, 0]
    done = run_cli("project", "--partitions", where, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    _same(partitioned_snapshot(urls, urls[0]), one_ledger)


def test_verify_names_the_partition_and_the_order_of_an_altered_history(
        workload: tuple[Path, Path], nats_server: NatsServer,  # noqa: F811
        tmp_path: Path) -> None:
    urls = [f"sqlite:///{tmp_path / f'p{k}.db'}" for k in range(4)]
    where = ",".join(urls)
    publish_and_work(urls, workload, nats_server, tmp_path)
    before = run_cli("verify", "--partitions", where, cwd=tmp_path)
    assert before.returncode == 0, before.stdout + before.stderr
    combined = before.stdout.split("verify: combined head ", 1)[1].split()[0]
    assert len(combined) == 4 * 64
    kept = run_cli("verify", "--partitions", where, "--head", combined, cwd=tmp_path)
    assert kept.returncode == 0 and "holds in every partition" in kept.stdout
    anchored = run_cli("anchor", "--to", "anchors.jsonl", "--partitions", where,
                       cwd=tmp_path)
    assert anchored.returncode == 0, anchored.stderr
    assert f"anchor: combined head {combined}" in anchored.stdout
    lines = (tmp_path / "anchors.jsonl").read_text().splitlines()
    assert [(json.loads(x)["partition"], json.loads(x)["of"]) for x in lines] == \
        [(k, 4) for k in range(4)]
    held = run_cli("verify", "--partitions", where, "--anchors", "anchors.jsonl",
                   cwd=tmp_path)
    assert held.returncode == 0 and held.stdout.count("1 anchor of anchors.jsonl holds") == 4
    refused = run_cli("status", str(B3), "--db", urls[3], cwd=tmp_path)
    assert refused.returncode == 2 and "holds partition 3 of a ledger of 4 partitions" in \
        refused.stderr  # a partition is not a ledger of its own
    reordered = ",".join([urls[1], urls[0], *urls[2:]])
    assert run_cli("status", str(B1), "--partitions", reordered, cwd=tmp_path).returncode == 2
    single = f"sqlite:///{tmp_path / 'single.db'}"
    assert run_cli("ingest", str(workload[0]), "--db", single, cwd=tmp_path).returncode == 0
    alone = run_cli("verify", "--db", single, "--anchors", "anchors.jsonl", cwd=tmp_path)
    assert alone.returncode == 4 and "of a ledger of 4 partitions" in alone.stderr

    partition = 3  # where B3 is (shard 3 of 16, of 4 partitions)
    store = Store(urls[partition])
    try:
        row = store.rows(str(B3))[0]  # its placing: a byte of the goods' amount
        state = bytes(row.state)
        assert b"9900" in state
        store.run("UPDATE {events} SET state = :s WHERE {id} = :n",
                  s=state.replace(b"9900", b"9901", 1), n=row.n)
    finally:
        store.close()
    after = run_cli("verify", "--partitions", where, "--head", combined, cwd=tmp_path)
    assert after.returncode == 4, after.stdout + after.stderr
    assert f"verify: partition {partition}: order {B3}: its history is broken" in after.stdout
    assert "partition 0: the chained record holds" in after.stdout


def test_the_webhook_publishes_each_body_to_its_partitions_for_their_workers(
        nats_server: NatsServer, tmp_path: Path) -> None:  # noqa: F811
    from tests.douyin_bodies import HOUR, place
    from tests.webhook_server import ENV, NOW, Server, paid

    urls = [f"sqlite:///{tmp_path / f'p{k}.db'}" for k in range(2)]
    where = ",".join(urls)
    orders = tmp_path / "orders.jsonl"
    orders.write_bytes(b"\n".join(place(f"W{n}", at=NOW - 2 * HOUR) for n in range(10)))
    done = run_cli("ingest", str(orders), "--partitions", where, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    process = subprocess.Popen(
        cli("--partitions", where, "serve-webhook", "--port", "0", "--nats", nats_server.url,
            "--ack"), cwd=tmp_path, env=env() | ENV, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        webhook = Server(process)
        for n in range(10):
            assert webhook.post(paid(n)) == (200, {"code": 0, "msg": "success"})
            webhook.expect("ack received ")
        assert webhook.post(paid(3))[0] == 200  # sent again: the stream drops the copy
        assert nats_server.messages("AFTERSALES") == 10
        assert webhook.get("/readyz")[0] == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert process.stdout is not None
        process.stdout.close()
    workers = [Worker(k, where, nats_server, tmp_path) for k in range(2)]
    try:
        wait_for(lambda: nats_server.messages("AFTERSALES") == 0,
                 "the workers to take every body")
    finally:
        stopped = [w.stop() for w in workers]  # (every one, whatever the first says)
    assert stopped == [0, 0]
    for n in range(10):
        shown = run_cli("--partitions", where, "status", f"W{n}", "--json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["order_status"] == "paid"


def test_a_partition_that_is_down_delays_only_its_own_rows(
        two_partitions: list[str], cluster: Cluster,  # noqa: F811
        workload: tuple[Path, Path], tmp_path: Path) -> None:  # noqa: F811
    where = ",".join(two_partitions)
    commands, _ = workload
    done = run_cli("ingest", str(commands), "--no-project", "--partitions", where,
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cluster.stop()
    partial = run_cli("project", "--partitions", where, "--retry-for", "0", cwd=tmp_path)
    assert partial.returncode == 3, partial.stdout + partial.stderr
    assert "partition 1: " in partial.stderr and "other partitions' rows are up to date" \
        in partial.stderr
    checked = run_cli("db", "check", "--json", "--partitions", where, "--retry-for", "0",
                      cwd=tmp_path)
    health = json.loads(checked.stdout)
    assert checked.returncode == 3 and not health["ok"]
    first, second = health["partitions"]
    assert first["ok"] and first["events"] > 0 and first["read_models"]["lag_events"] == 0
    assert first["read_models"]["position"] == first["events"]
    assert not second["ok"] and second["problems"][0].startswith("partition 1: ")
    cluster.start()
    behind = json.loads(run_cli("db", "check", "--json", "--partitions", where,
                                cwd=tmp_path).stdout)
    assert behind["partitions"][1]["read_models"]["lag_events"] > 0  # its rows waited
    assert run_cli("project", "--partitions", where, cwd=tmp_path).returncode == 0
    caught_up = json.loads(run_cli("db", "check", "--json", "--partitions", where,
                                   cwd=tmp_path).stdout)
    assert caught_up["ok"] and caught_up["read_models"]["lag_events"] == 0


def test_a_stream_that_could_drop_messages_is_refused(
        nats_server: NatsServer, workload: tuple[Path, Path],  # noqa: F811
        tmp_path: Path) -> None:
    async def make() -> None:
        import nats
        from nats.js.api import RetentionPolicy, StreamConfig
        nc = await nats.connect(nats_server.url)
        try:  # a work queue of the right subjects, but messages older than a minute go
            await nc.jetstream().add_stream(StreamConfig(
                name="AFTERSALES", subjects=["aftersales.*"],
                retention=RetentionPolicy.WORK_QUEUE, max_age=60.0))
        finally:
            await nc.close()

    run_async(make)
    done = run_cli("publish", str(workload[0]), "--nats", nats_server.url, cwd=tmp_path)
    assert done.returncode == 2 and "may drop messages before they are decided (max_age" \
        in done.stderr, done.stderr
    assert nats_server.messages("AFTERSALES") == 0


def test_a_worker_names_the_published_line_of_a_refused_command(
        nats_server: NatsServer, tmp_path: Path) -> None:  # noqa: F811
    from tests.douyin_bodies import T0, place

    where = f"sqlite:///{tmp_path / 'p0.db'}"
    lines = tmp_path / "lines.jsonl"
    ship = json.dumps({"command": "ship", "order_id": "R1", "at": "2026-03-01T12:00:00+08:00",
                       "carrier": "SF", "tracking_no": "SF1"})  # before it was paid
    lines.write_text(place("R1", at=T0).decode() + "\n" + ship + "\n")
    assert run_cli("publish", str(lines), "--nats", nats_server.url, "--partitions", where,
                   cwd=tmp_path).returncode == 0
    worker = Worker(0, where, nats_server, tmp_path)
    try:
        wait_for(lambda: nats_server.messages("AFTERSALES") == 0, "the worker")
    finally:
        assert worker.stop() == 0
    said = [json.loads(x) for x in worker.log.read_text().splitlines()]
    refused = [x for x in said if x["event"] == "not applied"]
    assert len(refused) == 1 and refused[0]["detail"].startswith("message 2 (line 2 of the "
                                                                   "published file): FLOW: ")
