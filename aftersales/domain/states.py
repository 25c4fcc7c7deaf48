"""Status vocabularies and the mutable state an order keeps of its return cases."""

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


class CaseStatus(StrEnum):
    REQUESTED = "requested"
    REJECTED = "rejected"
    APPROVED = "approved"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    REFUNDED = "refunded"
    COMPENSATED = "compensated"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


TERMINAL_CASE_STATUSES = frozenset(
    {
        CaseStatus.REJECTED,
        CaseStatus.REFUNDED,
        CaseStatus.COMPENSATED,
        CaseStatus.CLOSED,
        CaseStatus.WITHDRAWN,
    }
)

#: Who must act next while a case is in a status (SPEC section 6, `awaiting`).
AWAITING: dict[CaseStatus, str | None] = {
    CaseStatus.REQUESTED: "merchant",
    CaseStatus.APPROVED: "user",
    CaseStatus.IN_TRANSIT: "merchant",
    CaseStatus.RECEIVED: "merchant",
}


class Actor(StrEnum):
    USER = "user"
    MERCHANT = "merchant"
    PLATFORM = "platform"
    CARRIER = "carrier"
    SYSTEM = "system"


# Violation rules (merchant deadlines) and lapse rules (user deadlines), SPEC section 4.
RETURN_RESPONSE_48H = "RETURN_RESPONSE_48H"
RECEIPT_CONFIRM_7D = "RECEIPT_CONFIRM_7D"
COD_REFUND_VOUCHER_48H = "COD_REFUND_VOUCHER_48H"
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


@dataclass
class ReturnCase:
    """One return case (退货退款) of an order, as its events left it."""

    number: int
    amount: int
    reason: str
    requested_at: datetime
    status: CaseStatus = CaseStatus.REQUESTED
    deadline: Deadline | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    reject_reason: str | None = None
    carrier: str | None = None
    tracking_no: str | None = None
    tracking_at: datetime | None = None
    received_at: datetime | None = None
    received_by: str | None = None
    refunded_at: datetime | None = None
    refunded_by: str | None = None
    voucher_ref: str | None = None
    voucher_at: datetime | None = None
    compensated_at: datetime | None = None
    ended_at: datetime | None = None
    paid_to_user: int = 0
    merchant_debt: int = 0

    @property
    def is_open(self) -> bool:
        return self.status not in TERMINAL_CASE_STATUSES

    @property
    def awaiting(self) -> str | None:
        return AWAITING.get(self.status)

    def move_to(self, status: CaseStatus, at: datetime) -> None:
        self.status = status
        if status in TERMINAL_CASE_STATUSES:
            self.ended_at = at
            self.deadline = None
