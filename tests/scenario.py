"""Given-when-then helpers: one order driven through a ledger on a business-time clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from aftersales import CommandRefused, Ledger, Outcome, status_document
from aftersales.domain.events import OrderEvent

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=CST)
SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
GOODS, POSTAGE = 9900, 800


class Scenario:
    def __init__(self, ledger: Ledger, payment: str = "online", order_id: str = "D1",
                 merchant_id: str = "M1") -> None:
        self.ledger, self.payment, self.order_id = ledger, payment, order_id
        self.now = T0
        ledger.place_order(order_id=order_id, at=T0, payment=payment, merchant_id=merchant_id,
                           user_id="U1", goods_amount=GOODS, postage=POSTAGE)

    def at(self, after: timedelta) -> datetime:
        self.now = self.now + after
        return self.now

    def do(self, command: str, after: timedelta = HOUR, **fields: Any) -> Outcome:
        at = fields.pop("at", None) or self.at(after)
        method = getattr(self.ledger, command)
        outcome: Outcome = method(order_id=self.order_id, at=at, **fields)
        return outcome

    def refused(self, code: str, command: str, after: timedelta = HOUR,
                **fields: Any) -> CommandRefused:
        with pytest.raises(CommandRefused) as info:
            self.do(command, after, **fields)
        assert info.value.code == code, str(info.value)
        return info.value

    def tick(self, after: timedelta) -> int:
        return self.ledger.tick(self.at(after))

    # Reaching common states.
    def to_shipped(self) -> Scenario:
        if self.payment == "online":
            self.do("pay")
        else:
            self.do("confirm_order")
        self.do("ship", carrier="SF", tracking_no="SF1")
        return self

    def to_delivered(self) -> Scenario:
        self.to_shipped().do("deliver", DAY)
        return self

    def to_requested(self, **fields: Any) -> Scenario:
        self.to_delivered().do("request_return", DAY, reason="broken", **fields)
        return self

    def to_approved(self) -> Scenario:
        self.to_requested().do("approve_return")
        return self

    def to_in_transit(self) -> Scenario:
        self.to_approved().do("submit_tracking", carrier="YTO", tracking_no="YT1")
        return self

    def to_received(self) -> Scenario:
        self.to_in_transit().do("confirm_receipt", DAY)
        return self

    def to_refund_before_shipment(self, **fields: Any) -> Scenario:
        self.do("pay")
        self.do("request_refund", reason="changed my mind", **fields)
        return self

    def to_refund_after_shipment(self, **fields: Any) -> Scenario:
        self.to_shipped().do("request_refund", reason="never came", **fields)
        return self

    def to_exchange_requested(self, **fields: Any) -> Scenario:
        self.to_delivered().do("request_exchange", DAY, reason="size", **fields)
        return self

    def to_exchange_in_transit(self) -> Scenario:
        self.to_exchange_requested().do("approve_return")
        self.do("submit_tracking", carrier="YTO", tracking_no="YT1")
        return self

    def to_exchange_received(self) -> Scenario:
        self.to_exchange_in_transit().do("confirm_receipt", DAY)
        return self

    def to_rejected(self) -> Scenario:
        self.to_requested().do("reject_return", reason="used")
        return self

    def to_appealed(self) -> Scenario:
        self.to_rejected().do("appeal", DAY, reason="it was not used")
        return self

    # Reading the result.
    @property
    def doc(self) -> dict[str, Any]:
        order = self.ledger.get_order(self.order_id)
        assert order is not None
        return status_document(order)

    @property
    def order_status(self) -> str:
        return str(self.doc["order_status"])

    @property
    def case_status(self) -> str:
        return str(self.doc["return"]["status"])

    def events(self) -> list[OrderEvent]:
        return list(self.ledger.order_events(self.order_id))

    def event_names(self) -> list[str]:
        return [type(e).__name__ for e in self.events()]

    def last(self, name: str) -> OrderEvent:
        return [e for e in self.events() if type(e).__name__ == name][-1]


def refunded_returns(ledger: Ledger, *order_ids: str) -> None:
    """Online orders, each with a return refunded by the platform (PlatformRefunded, 5000,
    R-ON-4) and a second request awaiting the merchant (the tampering tests' orders)."""
    for order_id in order_ids:
        s = Scenario(ledger, "online", order_id=order_id)
        s.to_delivered()
        s.do("request_return", DAY, reason="half", amount=5000)
        s.do("approve_return")
        s.do("submit_tracking", carrier="YTO", tracking_no="YT1")
        s.do("confirm_receipt", DAY)  # refunded by the platform: PlatformRefunded, 5000
        s.do("request_return", DAY, reason="again", amount=100)
