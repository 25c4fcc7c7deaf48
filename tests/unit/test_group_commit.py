"""Group commit gives the outcomes of executing the same commands one by one."""

from __future__ import annotations

from aftersales import CommandRefused, Ledger
from aftersales import commands as cmd
from tests.scenario import HOUR, T0


def codes(results: list[object]) -> list[str]:
    return [r.code if isinstance(r, CommandRefused) else
            "duplicate" if getattr(r, "duplicate", False) else "applied" for r in results]


def test_a_line_refused_then_applied_later_in_the_same_batch_stays_refused(
    ledger: Ledger,
) -> None:
    pay = cmd.Pay(order_id="O2", at=T0 + HOUR)
    place = cmd.PlaceOrder(order_id="O2", at=T0, payment="online", merchant_id="M",
                           user_id="U", goods_amount=100)
    # pay before the order exists (refused), the order, the same pay again (applied).
    assert codes(ledger.execute_batch([pay, place, pay])) == [
        "UNKNOWN-ORDER", "applied", "applied"]
    assert codes(ledger.execute_batch([pay])) == ["duplicate"]


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
