"""Parallel ingest's split by order: the shard computed in Python, in SQLite's and in
PostgreSQL's SQL, and a worker's ledger sweeping only the orders it owns."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aftersales import Ledger, order_uuid
from aftersales.application import commands as cmd
from aftersales.ingest.routing import EVERY, route
from aftersales.storage.shard import Partition, shard_of
from tests.scenario import HOUR, T0

ORDER_IDS = [f"D{n}" for n in range(40)]


@given(st.text(min_size=1, max_size=64))
def test_the_shard_is_the_low_bits_of_the_orders_aggregate_id(order_id: str) -> None:
    assert shard_of(order_id) == order_uuid(order_id).int & 15


def place_all(ledger: Ledger) -> None:
    ledger.execute_batch([cmd.PlaceOrder(order_id=x, at=T0, payment="online",
                                         merchant_id="M", user_id="U", goods_amount=100)
                          for x in ORDER_IDS])


def test_the_stores_deadline_index_filters_by_the_same_shard(store_url: str) -> None:
    ledger = Ledger(store_url)
    place_all(ledger)
    for count in (2, 3, 16):
        for index in range(count):
            part = Partition(index, count)
            due = {order_id for _, order_id in
                   ledger.index.due_orders(T0 + 25 * HOUR, 100, partition=part)}
            assert due == {x for x in ORDER_IDS if part.owns(x)}
    ledger.close()


def test_the_event_logs_tail_is_filtered_by_the_same_shard(store_url: str) -> None:
    ledger = Ledger(store_url)
    place_all(ledger)
    part = Partition(1, 2)
    found = ledger.index.recorded_between(0, len(ORDER_IDS), part)
    assert {oid for _, oid in found} == {order_uuid(x) for x in ORDER_IDS if part.owns(x)}
    assert ledger.index.recorded_between(5, 10) == [
        (n.id, n.originator_id) for n in ledger.recorder.select_notifications(6, 5)]
    ledger.close()


def test_a_workers_ledger_sweeps_only_the_orders_it_owns(db_url: str) -> None:
    place_all(Ledger(db_url))
    part = Partition(0, 2)
    worker = Ledger(db_url, partition=part)
    assert worker.tick(T0 + 25 * HOUR) == sum(part.owns(x) for x in ORDER_IDS)
    results = worker.execute_batch([cmd.Tick(at=T0 + 26 * HOUR)])
    assert [getattr(r, "timeouts", None) for r in results] == [0]
    for order_id in ORDER_IDS:
        order = worker.get_order(order_id)
        assert order is not None
        assert (order.status == "cancelled") == part.owns(order_id)
    worker.close()


def test_lines_are_routed_by_order_and_ticks_to_every_worker() -> None:
    assert route('{"command":"tick","at":"x"}', 2).owner == EVERY
    line = '{"command":"pay","order_id":"D7","at":"x","command_id":"c1"}'
    assert route(line, 2).owner == shard_of("D7") % 2
    assert route(line, 2).command_id == "c1"
    for nonsense in ("not json", "[1]", '{"order_id": 7}', '{"command":"pay"}'):
        assert route(nonsense, 2).owner == 0
