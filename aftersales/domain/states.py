"""Status vocabularies, violation and lapse names, and the values an order keeps of them
(the mutable state of a case is `aftersales.domain.cases`'s)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Payment(StrEnum):
    ONLINE = "online"
    COD = "cod"


class OrderStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"
    PENDING_CONFIRMATION = "pending_confirmation"
    STOCKING = "stocking"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class CaseKind(StrEnum):
    """The kinds of after-sale case (售后类型, SPEC section 7)."""

    RETURN = "return"  # 退货退款: the goods go back, the money follows
    REFUND = "refund"  # 仅退款: money only, before (F-1) or after (F-2) shipment
    EXCHANGE = "exchange"  # 换货: the goods go back, a replacement comes


class Flow(StrEnum):
    """The path a case takes through the rules table: its kind, with a refund's before or
    after shipment apart (they run different rules, F-1 and F-2)."""

    RETURN = "return"
    REFUND_BEFORE_SHIPMENT = "refund_before_shipment"
    REFUND_AFTER_SHIPMENT = "refund_after_shipment"
    EXCHANGE = "exchange"

    @property
    def kind(self) -> CaseKind:
        return CaseKind.REFUND if self.value.startswith("refund") else CaseKind(self.value)


class CaseStatus(StrEnum):
    REQUESTED = "requested"
    REJECTED = "rejected"
    APPROVED = "approved"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    ARBITRATING = "arbitrating"  # appealed: the platform rules
    REPLACEMENT_SHIPPED = "replacement_shipped"
    EXCHANGED = "exchanged"
    REFUNDED = "refunded"
    COMPENSATED = "compensated"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


class Actor(StrEnum):
    USER = "user"
    MERCHANT = "merchant"
    PLATFORM = "platform"
    CARRIER = "carrier"
    SYSTEM = "system"


class Outcome(StrEnum):
    """For whom the platform ruled a dispute (A-3)."""

    USER = "user"
    MERCHANT = "merchant"


class Blame(StrEnum):
    """Whom a ruling blames (A-3; Douyin's arbitrate_blame 1-5)."""

    MERCHANT = "merchant"
    USER = "user"
    BOTH = "both"
    PLATFORM = "platform"
    CREATOR = "creator"  # 达人: the creator who sold the goods
    #: Not known yet: a ruling from a platform's push carries no blame (SPEC section 10);
    #: the platform gives it later, once (`record_blame`).
    UNKNOWN = "unknown"


#: The blames that make a ruling the merchant's lost dispute (纠纷商责, SPEC section 8).
LOST_BLAMES = frozenset({Blame.MERCHANT.value, Blame.BOTH.value})
#: The blames `record_blame` may give a ruling whose blame is unknown.
KNOWN_BLAMES = tuple(b.value for b in Blame if b is not Blame.UNKNOWN)


def dispute_result(outcome: str, blame: str) -> str | None:
    """How a ruling counts for the merchant: `lost` (blame merchant or both), `won` (for
    the merchant without that blame), `unknown` (the blame is not known yet: neither lost
    nor won until it is), or None (for the user, blaming someone else: neither)."""
    if blame == Blame.UNKNOWN:
        return "unknown"
    if blame in LOST_BLAMES:
        return "lost"
    return "won" if outcome == Outcome.MERCHANT else None


# Violation rules (merchant deadlines) and lapse rules (user deadlines), SPEC sections 4, 7, 8.
RETURN_RESPONSE_48H = "RETURN_RESPONSE_48H"
RECEIPT_CONFIRM_7D = "RECEIPT_CONFIRM_7D"
COD_REFUND_VOUCHER_48H = "COD_REFUND_VOUCHER_48H"
REFUND_RESPONSE_48H = "REFUND_RESPONSE_48H"
EXCHANGE_RESHIP_48H = "EXCHANGE_RESHIP_48H"
ARBITRATION_EVIDENCE_48H = "ARBITRATION_EVIDENCE_48H"
UNPAID_24H = "UNPAID_24H"
RETURN_TRACKING_7D = "RETURN_TRACKING_7D"


@dataclass(frozen=True)
class Violation:
    """A merchant deadline that passed (SPEC section 4)."""

    rule: str
    case: int
    deadline: datetime
    consequence: str
    penalty: bool


@dataclass(frozen=True)
class Lapse:
    """A user deadline that passed; reported apart from violations."""

    rule: str
    case: int | None
    deadline: datetime


@dataclass(frozen=True)
class Deadline:
    """The one pending deadline of an order: when, which rule, and for which case."""

    at: datetime
    rule: str
    case: int | None
