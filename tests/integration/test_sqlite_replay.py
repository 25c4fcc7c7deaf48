"""Replay on a real SQLite file: a fresh application rebuilds the live state, `--as-of`
gives the state after each event, and the deadline index agrees with the aggregates."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from aftersales import Ledger, parse_command, status_document
from aftersales.devtools.workload import Workload, generate
from aftersales.domain.order import Order, order_uuid
from tests.scenario import DAY, HOUR, SECOND, T0, Scenario


def ingest_workload(ledger: Ledger, orders: int, seed: int) -> list[str]:
    ids: list[str] = []
    for line in generate(Workload(orders=orders, seed=seed, days=30)):
        command = parse_command(json.dumps(line))
        ledger.execute(command)
        if line["command"] == "place_order":
            ids.append(line["order_id"])
    return ids


def test_I6_an_order_rebuilt_by_a_fresh_application_equals_the_live_one(db_url: str) -> None:
    live = Ledger(db_url)
    s = Scenario(live, "cod").to_received()
    s.tick(3 * DAY)  # compensated
    s.do("upload_refund_voucher", voucher_ref="V", amount=9900)
    live_order = live.get_order("D1")
    live.close()

    fresh = Ledger(db_url)
    rebuilt = fresh.get_order("D1")
    assert rebuilt == live_order
    assert rebuilt is not None and status_document(rebuilt)["return"]["status"] == "compensated"
    fresh.close()


def test_as_of_each_events_time_gives_the_state_after_that_event(durable_ledger: Ledger) -> None:
    s = Scenario(durable_ledger, "online").to_requested()
    s.tick(60 * DAY)  # auto-approved, then closed
    events = s.events()
    expected: Order | None = None
    for i, event in enumerate(events):
        expected = event.mutate(expected)
        later_same_instant = i + 1 < len(events) and events[i + 1].at == event.at
        if later_same_instant:
            continue
        as_of = durable_ledger.order_as_of("D1", event.at)
        assert as_of is not None
        assert status_document(as_of) == status_document(expected)
        assert as_of.version == event.originator_version
        before = durable_ledger.order_as_of("D1", event.at - SECOND)
        assert before is None or before.version < event.originator_version
    assert durable_ledger.order_as_of("D1", events[0].at - SECOND) is None


def test_as_of_never_invents_timeouts_that_were_not_applied(durable_ledger: Ledger) -> None:
    s = Scenario(durable_ledger).to_requested()
    later = durable_ledger.order_as_of("D1", s.now + 30 * DAY)
    assert later is not None and later.cases[0].status == "requested"
    assert durable_ledger.get_order("D1") == later


def test_I4_deadline_index_matches_every_aggregate_after_a_workload(db_url: str) -> None:
    ledger = Ledger(db_url)
    ids = ingest_workload(ledger, orders=150, seed=3)
    index = {oid: row for oid, row in ledger.index.pending_deadlines()}
    for order_id in ids:
        order = ledger.get_order(order_id)
        assert order is not None
        pending = order.pending_deadline
        row = index.pop(order.id, None)
        if pending is None:
            assert row is None, order_id
        else:
            assert row is not None and (row.deadline, row.rule, row.case) == (
                pending.at, pending.rule, pending.case), order_id
    assert index == {}
    ledger.close()


def test_I4_after_tick_no_pending_deadline_before_now_remains(durable_ledger: Ledger) -> None:
    for n in range(5):
        Scenario(durable_ledger, "online" if n % 2 else "cod", order_id=f"D{n}").to_requested()
    now = max(row.deadline for _, row in durable_ledger.index.pending_deadlines()) + HOUR
    durable_ledger.tick(now)
    assert all(row.deadline >= now for _, row in durable_ledger.index.pending_deadlines())


def test_deadline_index_survives_a_restart_and_drives_the_sweep(db_url: str) -> None:
    first = Ledger(db_url)
    s = Scenario(first).to_requested()
    first.close()
    second = Ledger(db_url)
    assert second.tick(s.now + 48 * HOUR + SECOND) == 1
    order = second.get_order("D1")
    assert order is not None and order.cases[0].status == "approved"
    second.close()


def test_command_ids_survive_a_restart(db_url: str) -> None:
    first = Ledger(db_url)
    Scenario(first)
    first.close()
    second = Ledger(db_url)
    again = second.place_order(order_id="D1", at=T0, payment="online", merchant_id="M1",
                               user_id="U1", goods_amount=9900, postage=800)
    assert again.duplicate
    second.close()


def test_a_stale_sweep_cannot_overwrite_a_newer_deadline(db_url: str) -> None:
    """A sweep that loaded an order before another writer moved it on must not set the
    index row from its stale state (the other writer set it with its events)."""
    sweeper, writer = Ledger(db_url), Ledger(db_url)
    s = Scenario(writer).to_approved()
    stale = sweeper.get_order("D1")
    assert stale is not None
    s.do("withdraw_return")
    s.do("request_return", reason="again")  # R-1 pending for case 2
    assert not sweeper.index.repair_deadline(stale.id, None, stale.version)
    [(_, row)] = sweeper.index.pending_deadlines()
    assert (row.rule, row.case) == ("R-1", 2)
    assert sweeper.tick(s.now + 3 * DAY) == 1  # and the sweep still finds it
    sweeper.close()
    writer.close()


def test_events_of_orders_read_alternately_carry_their_own_ids(durable_ledger: Ledger) -> None:
    # The SQLite recorder keeps the last id it converted (an order's rows share one);
    # reading orders in turn, from two threads at once, must never mix them up.
    ids = ingest_workload(durable_ledger, orders=12, seed=5)

    def read(order_ids: list[str]) -> list[bool]:
        return [event.originator_id == order_uuid(order_id)
                for _ in range(5) for order_id in order_ids
                for event in durable_ledger.order_events(order_id)]

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(read, [ids, ids[::-1]]))
    assert all(all(r) for r in results) and all(results)
