"""Group commit gives the outcomes of executing the same commands one by one."""

from __future__ import annotations

import pytest

from aftersales import CommandRefused, Ledger
from aftersales.application import batch
from aftersales.application import commands as cmd
from aftersales.application.order_cache import OrderCache
from aftersales.domain.order import order_uuid
from aftersales.storage.port import DeadlineRow, RefusalRow, sidecar_kwargs
from tests.scenario import HOUR, T0


def codes(results: list[object]) -> list[str]:
    return [r.code if isinstance(r, CommandRefused) else
            "duplicate" if getattr(r, "duplicate", False) else "applied" for r in results]


def test_a_refused_command_is_refused_again_as_it_was_after_the_state_changed(
    ledger: Ledger,
) -> None:
    """A command is decided once: refused on its order's state, it is remembered (with the
    timeouts it revealed), so that the same command again, in the same batch, a later one
    or one by one (a re-run of a file), is refused again as it was, never decided on a
    later state.  Another command, with other content, is decided."""
    place = cmd.PlaceOrder(order_id="O2", at=T0, payment="online", merchant_id="M",
                           user_id="U", goods_amount=100)
    ship = cmd.Ship(order_id="O2", at=T0 + 2 * HOUR, carrier="SF", tracking_no="1")
    pay = cmd.Pay(order_id="O2", at=T0 + HOUR)
    assert codes(ledger.execute_batch([place, ship, pay, ship])) == [
        "applied", "FLOW", "applied", "FLOW"]
    assert codes(ledger.execute_batch([ship])) == ["FLOW"]
    with pytest.raises(CommandRefused) as again:
        ledger.execute(ship)
    assert again.value.code == "FLOW"
    assert codes(ledger.execute_batch([cmd.Ship(order_id="O2", at=T0 + 3 * HOUR,
                                                carrier="SF", tracking_no="1")])) == [
        "applied"]


def test_an_unknown_order_refusal_is_not_remembered(ledger: Ledger) -> None:
    """UNKNOWN-ORDER depends on more than the order's history (it may be placed later,
    from another file): the same line, once the order is placed, is applied."""
    pay = cmd.Pay(order_id="Z1", at=T0 + HOUR)
    place = cmd.PlaceOrder(order_id="Z1", at=T0, payment="online", merchant_id="M",
                           user_id="U", goods_amount=100)
    with pytest.raises(CommandRefused) as refused:
        ledger.execute(pay)
    assert refused.value.code == "UNKNOWN-ORDER"
    assert codes(ledger.execute_batch([pay])) == ["UNKNOWN-ORDER"]
    ledger.execute(place)
    assert codes(ledger.execute_batch([pay])) == ["applied"]
    order = ledger.get_order("Z1")
    assert order is not None and order.status == "paid"
    # In one batch too: refused before the order is placed, applied after.
    other = cmd.Pay(order_id="Z2", at=T0 + HOUR)
    assert codes(ledger.execute_batch([other, place_order("Z2"), other])) == [
        "UNKNOWN-ORDER", "applied", "applied"]


def test_an_unknown_order_refusal_an_earlier_version_remembered_is_decided_afresh(
    ledger: Ledger,
) -> None:
    """A store written before UNKNOWN-ORDER was decided afresh holds such refusals: they
    are not given again, and the command's next refusal, if remembered, replaces them."""
    pay = cmd.Pay(order_id="Z3", at=T0 + HOUR)
    cid, digest = pay.identity()
    ledger.recorder.insert_events([], **sidecar_kwargs({}, [], [RefusalRow(
        cid, digest, order_uuid("Z3"), 0, "UNKNOWN-ORDER", "order Z3 was never placed")]))
    assert ledger.index.known_refusals([(cid, digest)])[(cid, digest)][0] == "UNKNOWN-ORDER"
    ledger.execute(cmd.PlaceOrder(order_id="Z3", at=T0, payment="cod", merchant_id="M",
                                  user_id="U", goods_amount=100))
    assert codes(ledger.execute_batch([pay])) == ["FLOW"]  # decided: cod orders are not paid
    assert ledger.index.known_refusals([(cid, digest)])[(cid, digest)][0] == "FLOW"
    assert codes(ledger.execute_batch([pay])) == ["FLOW"]


def place_order(order_id: str) -> cmd.PlaceOrder:
    return cmd.PlaceOrder(order_id=order_id, at=T0, payment="online", merchant_id="M",
                          user_id="U", goods_amount=100)


def test_a_batch_sees_what_earlier_lines_of_it_did(ledger: Ledger) -> None:
    place = cmd.PlaceOrder(order_id="O1", at=T0, payment="cod", merchant_id="M",
                           user_id="U", goods_amount=100)
    steps = [place, cmd.ConfirmOrder(order_id="O1", at=T0 + HOUR),
             cmd.Ship(order_id="O1", at=T0 + 2 * HOUR, carrier="SF", tracking_no="1"),
             cmd.Cancel(order_id="O1", at=T0 + 3 * HOUR, by="merchant"),
             cmd.Deliver(order_id="O1", at=T0 + 4 * HOUR), place]
    assert codes(ledger.execute_batch(steps)) == [
        "applied", "applied", "applied", "C-COD-3", "applied", "duplicate"]
    order = ledger.get_order("O1")
    assert order is not None and order.status == "delivered" and order.version == 4


def test_orders_changed_by_another_writer_are_reloaded(db_url: str) -> None:
    first, other = Ledger(db_url), Ledger(db_url)
    place = cmd.PlaceOrder(order_id="O1", at=T0, payment="online", merchant_id="M",
                           user_id="U", goods_amount=100)
    first.execute_batch([place])  # now cached by `first`
    other.pay(order_id="O1", at=T0 + HOUR)
    ship = cmd.Ship(order_id="O1", at=T0 + 2 * HOUR, carrier="SF", tracking_no="1")
    assert codes(first.execute_batch([ship])) == ["applied"]  # not FLOW on a stale copy
    first.close()
    other.close()


def place(order_id: str, at_hours: int = 0) -> cmd.PlaceOrder:
    return cmd.PlaceOrder(order_id=order_id, at=T0 + at_hours * HOUR, payment="online",
                          merchant_id="M", user_id="U", goods_amount=100)


def timeouts(results: list[object]) -> list[int]:
    return [getattr(r, "timeouts", 0) for r in results]


def test_a_tick_in_a_batch_sweeps_the_batchs_orders_and_the_stores(ledger: Ledger) -> None:
    ledger.execute_batch([place("A")])  # recorded: found by the tick through the index
    batch = [place("B", 1), cmd.Tick(at=T0 + 26 * HOUR),
             cmd.Pay(order_id="B", at=T0 + 27 * HOUR)]
    results = ledger.execute_batch(batch)
    assert codes(results) == ["applied", "applied", "DEADLINE"]
    assert timeouts(results) == [0, 2, 0]  # C-ON-4 of A and of B (placed in this batch)
    for order_id in ("A", "B"):
        order = ledger.get_order(order_id)
        assert order is not None and order.status == "cancelled" and order.version == 2
    assert ledger.index.pending_deadlines() == []


def test_a_tick_with_more_orders_due_than_the_limit_is_swept_on_its_own(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch, "TICK_LIMIT", 2)
    ledger.execute_batch([place(f"O{n}") for n in range(5)])
    results = ledger.execute_batch([place("P", 1), cmd.Tick(at=T0 + 26 * HOUR),
                                    place("Q", 27), cmd.Tick(at=T0 + 52 * HOUR)])
    assert codes(results) == ["applied"] * 4
    assert timeouts(results) == [0, 6, 0, 1]
    assert ledger.index.pending_deadlines() == []


def test_an_index_row_behind_its_order_is_set_right_by_an_in_batch_tick(
    ledger: Ledger,
) -> None:
    ledger.execute_batch([place("A")])
    order = ledger.get_order("A")
    assert order is not None
    stale = DeadlineRow("A", T0, "C-ON-4", None)  # says due long before the real deadline
    assert ledger.index.repair_deadline(order.id, stale, order.version)
    results = ledger.execute_batch([cmd.Tick(at=T0 + HOUR)])
    assert timeouts(results) == [0]
    assert [row.deadline for _, row in ledger.index.pending_deadlines()] == [T0 + 24 * HOUR]


def test_an_order_changed_by_another_writer_is_reloaded_after_this_one_recorded_more(
    db_url: str,
) -> None:
    first, other = Ledger(db_url), Ledger(db_url)
    first.execute_batch([place("X"), place("Y")])  # both cached by `first`
    other.pay(order_id="X", at=T0 + HOUR)  # X changes behind its back
    assert codes(first.execute_batch([cmd.Pay(order_id="Y", at=T0 + HOUR)])) == ["applied"]
    ship = cmd.Ship(order_id="X", at=T0 + 2 * HOUR, carrier="SF", tracking_no="1")
    assert codes(first.execute_batch([ship])) == ["applied"]  # not FLOW on a stale copy
    first.close()
    other.close()


def test_the_cache_looks_only_at_log_positions_other_writers_recorded() -> None:
    cache = OrderCache()
    cache.checked_upto(10)
    assert cache.others(15) == [(10, 15)]
    cache.recorded(11, 20)  # this process's own events
    cache.recorded(31, 40)
    assert cache.others(20) == []
    assert cache.others(50) == [(20, 30), (40, 50)]
    cache.checked_upto(40)
    assert cache.others(45) == [(40, 45)]
