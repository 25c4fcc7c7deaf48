"""A partitioned ledger answers exactly as one ledger does.

The same workload (every kind of case from the generator, a generated Douyin feed, and
push bodies in the platform's real shapes: both envelope spellings, ids above 2^53, one
message naming sub-orders of two partitions, a message without a time received with its
receive time) goes into one SQLite ledger, and into ledgers of 1, 2 and 4 partitions:
directly (`ingest --partitions`) and through NATS JetStream (`publish`, one `work` per
partition, on a nats-server of the test's own).  Every order's events and status
document, the command ids, and every read model (violations, lapses, disputes,
discrepancies and the rest, without log positions) are the same.
"""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aftersales.storage.shard import shard_of
from tests import douyin_bodies as dy
from tests.conftest import PG_URL, drop_schema, require_postgres
from tests.nats_server import NatsServer, nats_server, wait_for  # noqa: F401
from tests.reliability.snapshot import Snapshot, cli, env, partitioned_snapshot, run_cli

pytestmark = pytest.mark.slow

#: Real-shape orders: shards 0, 3 and 5 (partitions 0, 1, 1 of two; 0, 3, 1 of four).
B1, B3, B5 = dy.BIG, dy.BIG + 2, dy.BIG + 4


def real_shapes() -> list[bytes]:
    """Push bodies as the platform sends them, with the order export's lines."""
    later = dy.T0 + 3 * dy.DAY
    return [
        dy.place(B1), dy.place(B3), dy.place(B5, payment="cod"),
        dy.body(dy.paid("7000000000000000001", B1, B3)),  # two partitions' sub-orders
        dy.body(dy.paid("7000000000000000002", B5, pay_type=0, spelling="camel")),
        dy.body(dy.shipped("7000000000000000003", B1, B3, spelling="camel")),
        dy.body(dy.shipped("7000000000000000004", B5)),
        dy.body(dy.completed("7000000000000000005", B1, B3)),
        dy.body(dy.completed("7000000000000000006", B5, spelling="camel")),
        dy.body(dy.aftersale(200, "7000000000000000007", dy.T0 + 2 * dy.DAY, order=B3,
                             refund_amount=9900, refund_post_amount=0)),
        # a tag that carries no time: the receive time is the message's
        dy.body(dy.aftersale(209, "7000000000000000008", None, order=B3,
                             status_deadline=dy.ts(later + 9 * dy.DAY)),
                received_at=later),
        dy.body(dy.aftersale(201, "7000000000000000009", later + dy.HOUR, order=B3,
                             op_role=1, spelling="camel")),
    ]


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("workload")
    commands, feed = folder / "commands.jsonl", folder / "feed.jsonl"
    made = run_cli("gen", "--orders", "160", "--seed", "28", cwd=folder)
    assert made.returncode == 0, made.stderr
    commands.write_text(made.stdout)
    made = run_cli("gen", "--platform", "douyin", "--orders", "60", "--seed", "29",
                   cwd=folder)
    assert made.returncode == 0, made.stderr
    feed.write_bytes(made.stdout.encode() + b"\n".join(real_shapes()) + b"\n")
    assert {shard_of(str(o)) for o in (B1, B3, B5)} == {0, 3, 5}
    return commands, feed


@pytest.fixture(scope="module")
def one_ledger(workload: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
               ) -> Snapshot:
    folder = tmp_path_factory.mktemp("one")
    url = f"sqlite:///{folder / 'one.db'}"
    commands, feed = workload
    for args in (("ingest", str(commands)), ("ingest", str(feed), "--format", "douyin")):
        done = run_cli(*args, "--db", url, cwd=folder)
        assert done.returncode == 0, done.stderr
    return partitioned_snapshot([url], url)


def stores(kind: str, n: int, folder: Path) -> Iterator[list[str]]:
    if kind == "sqlite":
        yield [f"sqlite:///{folder / f'p{k}.db'}" for k in range(n)]
        return
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:12]}"
    urls = [f"{PG_URL}?schema={name}_p{k}" for k in range(n)]
    try:
        yield urls
    finally:
        for url in urls:
            drop_schema(url)


@pytest.mark.parametrize("kind,n", [("sqlite", 2), ("sqlite", 4)])
def test_ingest_into_partitions_answers_as_one_ledger(
        kind: str, n: int, workload: tuple[Path, Path], one_ledger: Snapshot,
        tmp_path: Path) -> None:
    commands, feed = workload
    for urls in stores(kind, n, tmp_path):
        where = ",".join(urls)
        for args in (("ingest", str(commands)), ("ingest", str(feed), "--format", "douyin")):
            done = run_cli(*args, "--partitions", where, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        found = partitioned_snapshot(urls, urls[0])
        _same(found, one_ledger)
        verified = run_cli("verify", "--partitions", where, cwd=tmp_path)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "the read models equal a rebuild" in verified.stdout


def publish_and_work(urls: list[str], workload: tuple[Path, Path], server: NatsServer,
                     folder: Path, stream: str = "AFTERSALES") -> None:
    """Publish the workload, run one worker per partition until the stream is empty,
    stop them (SIGTERM), and project every partition."""
    commands, feed = workload
    where = ",".join(urls)
    for args in (("publish", str(commands)), ("publish", str(feed), "--format", "douyin")):
        done = run_cli(*args, "--nats", server.url, "--stream", stream, "--partitions", where,
                       cwd=folder)
        assert done.returncode == 0, done.stderr
    logs = [folder / f"work-{k}.log" for k in range(len(urls))]  # (a pipe could fill)
    workers = []
    for k, log in enumerate(logs):
        with open(log, "a") as said:
            workers.append(subprocess.Popen(
                cli("work", "--partition", str(k), "--nats", server.url, "--stream", stream,
                    "--partitions", where), cwd=folder, env=env(),
                stdout=subprocess.DEVNULL, stderr=said))

    def their_logs() -> str:
        return "; ".join(log.read_text()[-2000:] for log in logs)
    try:
        wait_for(lambda: server.messages(stream) == 0 or any(
            w.poll() is not None for w in workers),
            "the workers to take every message", limit=300)
        assert all(w.poll() is None for w in workers), their_logs()
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=60) for w in workers]
    assert codes == [0] * len(workers), their_logs()
    done = run_cli("project", "--partitions", where, cwd=folder)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("n", [1, 2, 4])
def test_partitions_fed_through_nats_answer_as_one_ledger(
        n: int, workload: tuple[Path, Path], one_ledger: Snapshot,
        nats_server: NatsServer, tmp_path: Path) -> None:  # noqa: F811
    for urls in stores("postgres", n, tmp_path):
        publish_and_work(urls, workload, nats_server, tmp_path)
        _same(partitioned_snapshot(urls, urls[0]), one_ledger)
        verified = run_cli("verify", "--partitions", ",".join(urls), cwd=tmp_path)
        assert verified.returncode == 0, verified.stdout + verified.stderr


def _same(found: Snapshot, expected: Snapshot) -> None:
    assert found.statuses == expected.statuses
    assert found.events == expected.events
    assert found.commands == expected.commands
    for name, rows in expected.read_models.items():
        assert found.read_models[name] == rows, name
    assert expected.read_models["violations"] and expected.read_models["disputes"] \
        and expected.read_models["discrepancies"] and expected.read_models["lapses"]


def test_one_runner_per_partition_follows_into_one_reporting_database(
        workload: tuple[Path, Path], one_ledger: Snapshot, tmp_path: Path) -> None:
    """Two `project --follow --partition K` at once, on PostgreSQL: each from its own
    position, both writing the same merchants' daily counters; the read models equal one
    ledger's and a rebuild's."""
    import json

    commands, feed = workload
    for urls in stores("postgres", 2, tmp_path):
        where = ",".join(urls)
        for args in (("ingest", str(commands)), ("ingest", str(feed), "--format", "douyin")):
            done = run_cli(*args, "--no-project", "--partitions", where, cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        followers = [subprocess.Popen(
            cli("project", "--follow", "--partition", str(k), "--batch", "50",
                "--partitions", where), cwd=tmp_path, env=env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in range(2)]

        def caught_up(where: str = where) -> bool:
            found = run_cli("db", "check", "--json", "--partitions", where, cwd=tmp_path)
            models = [p["read_models"] for p in json.loads(found.stdout)["partitions"]]
            return all(m["created"] and m["lag_events"] == 0 and m["position"]
                       for m in models)
        try:
            wait_for(caught_up, "both runners to catch up")
        finally:
            for f in followers:
                f.send_signal(signal.SIGTERM)
            assert [f.wait(timeout=60) for f in followers] == [0, 0]
        _same(partitioned_snapshot(urls, urls[0]), one_ledger)
        verified = run_cli("verify", "--partitions", where, cwd=tmp_path)
        assert verified.returncode == 0, verified.stdout + verified.stderr
