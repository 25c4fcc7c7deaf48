"""A small, independent model of SPEC sections 2, 3, 7, 8 and 9 (and of the commands a
platform feed writes: an amended request, a withdrawn appeal, a blame recorded later) for
the state machine to check against.

It is written as tables (who may cancel what, which step needs which status, what each
timeout does) rather than as an aggregate, so that it fails differently from the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

H, D = timedelta(hours=1), timedelta(days=1)
WINDOW = {"pay": 24 * H, "answer": 48 * H, "track": 7 * D, "receive": 7 * D, "voucher": 48 * H,
          "reship": 48 * H, "extension": 7 * D, "appeal": 7 * D, "evidence": 48 * H}
#: Refusals decided afresh each time (SPEC section 6): the order may be placed later.
UNREMEMBERED = {"UNKNOWN-ORDER"}
TERMINAL = {"rejected", "refunded", "compensated", "closed", "withdrawn", "exchanged"}

ONLINE_CANCEL = {("user", "awaiting_payment"): None, ("user", "paid"): "C-ON-2",
                 ("user", "shipped"): "C-ON-2", ("platform", "awaiting_payment"): None,
                 ("platform", "paid"): None, ("platform", "shipped"): "C-ON-2"}
COD_CANCEL = {("merchant", "pending_confirmation"): None, ("merchant", "stocking"): None,
              ("merchant", "shipped"): "C-COD-3", ("platform", "pending_confirmation"): "C-COD-3",
              ("platform", "stocking"): "C-COD-3", ("platform", "shipped"): None}
# command: (payment it is for, status it needs, status it leads to)
ORDER_STEPS = {"pay": ("online", "awaiting_payment", "paid"),
               "confirm_order": ("cod", "pending_confirmation", "stocking"),
               "ship": (None, None, "shipped"), "deliver": (None, "shipped", "delivered")}
# command: (case status it needs, what the system did instead when it is late)
CASE_STEPS = {"approve_return": ("requested", "approve"),
              "reject_return": ("requested", "approve"),
              "submit_tracking": ("approved", "close"),
              "confirm_receipt": ("in_transit", "receive"),
              "reject_receipt": ("in_transit", "receive"),
              "extend_deadline": ("in_transit", "receive")}
REQUESTS = {"request_return": "return", "request_exchange": "exchange",
            "request_refund": "refund"}


@dataclass
class MCase:
    n: int
    amount: int
    kind: str = "return"
    before: bool = False  # a refund asked before shipment (F-1)
    status: str = "requested"
    deadline: datetime | None = None
    by_system: set[str] = field(default_factory=set)
    debt: bool = False
    paid: int = 0
    extended: bool = False
    converted: bool = False
    rejected_at: datetime | None = None
    goods_refused: bool = False
    dispute: str | None = None  # None (never appealed), "open", "ruled", "withdrawn"
    evidence_in: bool = False
    outcome: str | None = None
    blame: str | None = None  # "unknown" until record_blame gives it
    amended: bool = False  # the happy path amends a request once


@dataclass
class MOrder:
    payment: str
    goods: int
    postage: int
    status: str
    last_at: datetime
    pay_deadline: datetime | None
    cancelled_by: str | None = None
    cases: list[MCase] = field(default_factory=list)
    refunded: int = 0
    returned: int = 0
    violations: list[tuple[str, int, datetime]] = field(default_factory=list)
    lapses: list[tuple[str, int | None, datetime]] = field(default_factory=list)

    @property
    def case(self) -> MCase | None:
        return self.cases[-1] if self.cases else None

    def due(self) -> datetime | None:
        if self.status == "awaiting_payment":
            return self.pay_deadline
        case = self.case
        return case.deadline if case and case.status not in TERMINAL else None

    def fire(self) -> None:
        d = self.due()
        assert d is not None
        self.last_at = d
        if self.status == "awaiting_payment":
            self.status, self.cancelled_by = "cancelled", "system"
            self.lapses.append(("UNPAID_24H", None, d))
            return
        c = self.case
        assert c is not None
        if c.status == "arbitrating":  # no evidence, ruled for the user
            c.by_system.add("rule")
            self.violations.append(("ARBITRATION_EVIDENCE_48H", c.n, d))
            self.resume(c, d, "user", "merchant")
        elif c.status == "requested" and c.kind == "refund":
            c.by_system.add("approve")
            self.violations.append(("REFUND_RESPONSE_48H", c.n, d))
            self.refund_only(c)
        elif c.status == "requested":
            c.status, c.deadline = "approved", d + WINDOW["track"]
            c.by_system.add("approve")
            self.violations.append(("RETURN_RESPONSE_48H", c.n, d))
        elif c.status == "approved":
            c.status, c.deadline = "closed", None
            c.by_system.add("close")
            self.lapses.append(("RETURN_TRACKING_7D", c.n, d))
        elif c.status == "in_transit":
            c.by_system.add("receive")
            self.violations.append(("RECEIPT_CONFIRM_7D", c.n, d))
            self.received(c, d)
        elif c.status == "received" and c.kind == "exchange":
            c.converted, c.deadline = True, None
            self.violations.append(("EXCHANGE_RESHIP_48H", c.n, d))
            c.status, c.debt = ("refunded", False) if self.payment == "online" else (
                "compensated", True)
            self.pay_user(c)
        elif c.status == "received":
            c.status, c.deadline, c.debt = "compensated", None, True
            self.pay_user(c)
            self.violations.append(("COD_REFUND_VOUCHER_48H", c.n, d))

    def resume(self, c: MCase, at: datetime, outcome: str, blame: str) -> None:
        """A-4: where a ruling leaves the case."""
        c.dispute, c.outcome, c.blame, c.deadline = "ruled", outcome, blame, None
        if outcome == "merchant":
            c.status = "rejected"
        elif c.kind == "refund":
            self.refund_only(c)
        elif not c.goods_refused:
            c.status, c.deadline = "approved", at + WINDOW["track"]
        else:
            self.received(c, at)

    def refund_only(self, c: MCase) -> None:
        c.status, c.deadline = "refunded", None
        self.pay_user(c)
        if c.before:
            self.status, self.cancelled_by = "cancelled", "platform"

    def received(self, c: MCase, at: datetime) -> None:
        if c.kind == "exchange":
            c.status, c.deadline = "received", at + WINDOW["reship"]
        elif self.payment == "online":
            c.status, c.deadline = "refunded", None
            self.pay_user(c)
        else:
            c.status, c.deadline = "received", at + WINDOW["voucher"]

    def pay_user(self, c: MCase) -> None:
        c.paid += c.amount
        self.refunded += c.amount
        self.returned += c.amount

    def catch_up(self, now: datetime) -> None:
        while (d := self.due()) is not None and d < now:
            self.fire()


NEXT_ORDER_STEP = {"awaiting_payment": "pay", "pending_confirmation": "confirm_order",
                   "paid": "ship", "stocking": "ship", "shipped": "deliver"}
NEXT_CASE_STEP = {"requested": "approve_return", "approved": "submit_tracking",
                  "in_transit": "confirm_receipt", "received": "upload_refund_voucher",
                  "replacement_shipped": "deliver_replacement"}


class Model:
    def __init__(self) -> None:
        self.orders: dict[str, MOrder] = {}
        self.commands: dict[str, str] = {}
        # Remembered: refused again as it was (but for refusals that depend on more than
        # the order: a command for an order not placed yet is decided afresh).
        self.refused: dict[tuple[str, str], str] = {}
        self.at: datetime | None = None  # the business time of the command decided

    def next_step(self, order_id: str, label: int = 0) -> str | None:
        """The step that moves an order along its happy path, if any (`label` picks among
        the kinds of case, and sometimes a refund before shipment)."""
        o = self.orders.get(order_id)
        if o is None:
            return "place_order"
        c = o.case
        open_case = c is not None and c.status not in TERMINAL
        if c is not None and c.dispute == "ruled" and c.blame == "unknown":
            return "record_blame"
        # Label 0 amends a request before it is answered (once); label 2 withdraws the
        # appeal once the evidence is in.
        if c is not None and c.status == "requested" and label == 0 and not (
                c.amended or c.before):
            return "amend_request"
        if c is not None and c.status == "arbitrating" and label == 2 and c.evidence_in:
            return "withdraw_appeal"
        # Labels 1 and 2 reject the request (an exchange, a refund after shipment), label 3
        # the returned goods; then the user appeals (and with label 3 the platform rules
        # before the evidence).
        if c is not None and c.status == "rejected" and c.dispute is None and label and not (
                c.before):
            return "appeal"
        if c is not None and c.status == "arbitrating":
            return "arbitrate" if c.evidence_in or label == 3 else "submit_evidence"
        if c is not None and not c.before and (
                (c.status == "requested" and label in (1, 2))
                or (c.status == "in_transit" and label == 3)):
            return "reject_return" if c.status == "requested" else "reject_receipt"
        if o.status == "paid" and label == 3 and not open_case:
            return "request_refund"
        if o.status in NEXT_ORDER_STEP and not open_case:
            return NEXT_ORDER_STEP[o.status]
        if o.status == "delivered" and not open_case:
            return ("request_return", "request_exchange", "request_refund",
                    "request_return")[label % 4]
        if c is None:
            return None
        if c.status == "received" and c.kind == "exchange":
            return "ship_replacement"
        return NEXT_CASE_STEP.get(c.status)

    def tick(self, now: datetime) -> None:
        for order in self.orders.values():
            order.catch_up(now)

    def apply(self, name: str, order_id: str, at: datetime, ident: tuple[str, str],
              **f: object) -> str | None:
        """The refusal code the ledger must give, or None (applied or a known duplicate)."""
        cid, digest = ident
        if cid in self.commands:
            if self.commands[cid] == digest:
                return None
            if order_id in self.orders:  # the refusal still reveals due timeouts
                self.orders[order_id].catch_up(at)
            return "DUPLICATE-ID"
        if ident in self.refused:  # decided once: refused again, and it reveals nothing
            return self.refused[ident]
        code = self._decide(name, order_id, at, f)
        if code is None:
            self.commands[cid] = digest
        elif code not in UNREMEMBERED:
            self.refused[ident] = code
        return code

    def _decide(self, name: str, oid: str, at: datetime, f: dict[str, object]) -> str | None:
        o = self.orders.get(oid)
        if name == "place_order":
            if o is not None:
                o.catch_up(at)
                return "DUPLICATE-ORDER"
            online = f["payment"] == "online"
            self.orders[oid] = MOrder(
                str(f["payment"]), int(f["goods_amount"]), int(f["postage"]),  # type: ignore[call-overload]
                "awaiting_payment" if online else "pending_confirmation", at,
                at + WINDOW["pay"] if online else None)
            return None
        if o is None:
            return "UNKNOWN-ORDER"
        o.catch_up(at)
        if at < o.last_at:
            return "TIME"
        self.at = at
        code = self._check(o, name, f)
        if code is None:
            self._do(o, name, at, f)
            o.last_at = at
        return code

    def _check(self, o: MOrder, name: str, f: dict[str, object]) -> str | None:
        c = o.case
        if name == "cancel":
            by = f["by"]
            if o.payment == "cod" and by == "user":
                return "C-COD-1"
            if o.payment == "online" and by == "merchant":
                return "C-ON-3"
            if o.status in ("cancelled", "delivered"):
                return "C-ANY"
            table = ONLINE_CANCEL if o.payment == "online" else COD_CANCEL
            refusal = table[(str(by), o.status)]
            if refusal is None and c is not None and c.status not in TERMINAL:
                return "FLOW"  # an open refund before shipment is answered first
            return refusal
        if name in ORDER_STEPS:
            payment, needs, _ = ORDER_STEPS[name]
            if payment is not None and payment != o.payment:
                return "FLOW"
            if name == "pay" and o.cancelled_by == "system":
                return "DEADLINE"
            if o.status == "cancelled":
                return "C-ANY"
            needs = needs or ("paid" if o.payment == "online" else "stocking")
            return None if o.status == needs else "FLOW"
        if name in REQUESTS:
            refund = name == "request_refund"
            if refund and o.payment == "cod":
                return "FLOW"  # F-3
            if o.status == "cancelled":
                return "C-ANY"
            allowed = ("paid", "shipped", "delivered") if refund else ("delivered",)
            if o.status not in allowed:
                return "FLOW"
            if c is not None and c.status not in TERMINAL:
                return "R-OPEN"
            amount = f.get("amount")
            if refund and o.status == "paid":  # F-1: the whole order
                whole = o.goods + o.postage
                return None if amount is None or amount == whole else "R-AMOUNT"
            left = o.goods - o.returned
            if left <= 0 or (amount is not None and int(amount) > left):  # type: ignore[call-overload]
                return "R-AMOUNT"
            return None
        if name == "set_deadline":
            if o.due() is None:
                return "FLOW"
            return None if f["until"] > self.at else "D-2"  # type: ignore[operator]
        if c is None:
            return "FLOW"
        if name == "amend_request":
            if c.status != "requested" or c.before:
                return "FLOW"  # answered, ended, or F-1's whole order
            left = o.goods - o.returned
            return "R-AMOUNT" if left <= 0 or int(f["amount"]) > left else None  # type: ignore[call-overload]
        if name == "withdraw_appeal":
            return None if c.status == "arbitrating" else "FLOW"
        if name == "record_blame":
            return None if self.unknown_blame(o, f.get("case")) is not None else "FLOW"
        if name == "appeal":
            if c.dispute is not None:
                return "A-1"  # one appeal per case
            if c.status != "rejected":
                return "FLOW"
            if c.before:
                return "A-1"  # F-1's refusal by shipping is not arbitrated
            assert c.rejected_at is not None
            return "DEADLINE" if self.at > c.rejected_at + WINDOW["appeal"] else None  # type: ignore[operator]
        if name in ("submit_evidence", "arbitrate"):
            if c.status != "arbitrating":
                return "DEADLINE" if "rule" in c.by_system else "FLOW"
            if name == "submit_evidence" and c.evidence_in:
                return "A-2"
            return None
        if name in ("ship_replacement", "deliver_replacement"):
            if c.kind != "exchange":
                return "FLOW"
            if name == "deliver_replacement":
                return None if c.status == "replacement_shipped" else "FLOW"
            if c.status == "received":
                return None
            return "DEADLINE" if c.converted else "FLOW"
        if name in CASE_STEPS:
            needs, late = CASE_STEPS[name]
            if c.status != needs:
                return "DEADLINE" if late in c.by_system else "FLOW"
            if name == "reject_return" and c.kind == "refund" and c.before:
                return "FLOW"  # F-1: refused only by shipping
            if name == "extend_deadline" and c.extended:
                return "D-1"
            return None
        if name == "withdraw_return":
            if c.status in ("in_transit", "received", "replacement_shipped"):
                return "R-5"
            if c.status in ("requested", "approved"):
                return None
            return "DEADLINE" if "close" in c.by_system else "FLOW"
        if name == "upload_refund_voucher":
            if o.payment == "online":
                return "FLOW"
            target = self.voucher_case(o)
            if target is None:
                return "FLOW"
            return None if f["amount"] == target.amount else "R-AMOUNT"
        raise AssertionError(name)

    @staticmethod
    def unknown_blame(o: MOrder, number: object) -> MCase | None:
        """The case whose ruling's blame `record_blame` gives: case `number`, or the latest
        ruled with blame unknown (None: there is none)."""
        ruled = [c for c in o.cases if c.dispute == "ruled" and c.blame == "unknown"]
        if number is None:
            return ruled[-1] if ruled else None
        return next((c for c in ruled if c.n == number), None)

    @staticmethod
    def voucher_case(o: MOrder) -> MCase | None:
        """The case a voucher is for: the received return, else the latest still owed."""
        if o.case is not None and o.case.status == "received" and o.case.kind == "return":
            return o.case
        owed = [c for c in o.cases if c.status == "compensated" and c.debt]
        return owed[-1] if owed else None

    def _do(self, o: MOrder, name: str, at: datetime, f: dict[str, object]) -> None:
        c = o.case
        if name == "cancel":
            if o.status == "paid":
                o.refunded += o.goods + o.postage
            o.status, o.cancelled_by = "cancelled", str(f["by"])
        elif name in ORDER_STEPS:
            o.status = ORDER_STEPS[name][2]
            if name == "ship" and c is not None and c.status == "requested" and c.before:
                c.status, c.deadline, c.rejected_at = "rejected", None, at  # F-1: by shipping
        elif name in REQUESTS:
            before = name == "request_refund" and o.status == "paid"
            amount = (o.goods + o.postage if before
                      else f.get("amount") or o.goods - o.returned)
            o.cases.append(MCase(len(o.cases) + 1, int(amount),  # type: ignore[call-overload]
                                 kind=REQUESTS[name], before=before,
                                 deadline=at + WINDOW["answer"]))
        elif name == "set_deadline":
            if o.status == "awaiting_payment":
                o.pay_deadline = f["until"]  # type: ignore[assignment]
            else:
                assert c is not None
                c.deadline = f["until"]  # type: ignore[assignment]
        elif c is None:
            raise AssertionError(name)
        elif name == "approve_return" and c.kind == "refund":
            o.refund_only(c)
        elif name == "approve_return":
            c.status, c.deadline = "approved", at + WINDOW["track"]
        elif name == "reject_return":
            c.status, c.deadline, c.rejected_at = "rejected", None, at
        elif name == "withdraw_return":
            c.status, c.deadline = "withdrawn", None
        elif name == "submit_tracking":
            c.status, c.deadline = "in_transit", at + WINDOW["receive"]
        elif name == "confirm_receipt":
            o.received(c, at)
        elif name == "reject_receipt":
            c.status, c.deadline, c.rejected_at, c.goods_refused = "rejected", None, at, True
        elif name == "appeal":
            c.status, c.deadline, c.dispute = "arbitrating", at + WINDOW["evidence"], "open"
        elif name == "submit_evidence":
            c.evidence_in, c.deadline = True, None
        elif name == "arbitrate":
            o.resume(c, at, str(f["outcome"]), str(f["blame"]))
        elif name == "amend_request":
            c.amount, c.amended = int(f["amount"]), True  # type: ignore[call-overload]
        elif name == "withdraw_appeal":
            c.status, c.deadline, c.dispute = "rejected", None, "withdrawn"
        elif name == "record_blame":
            target = self.unknown_blame(o, f.get("case"))
            assert target is not None
            target.blame = str(f["blame"])
        elif name == "extend_deadline":
            assert c.deadline is not None
            c.deadline, c.extended = c.deadline + WINDOW["extension"], True
        elif name == "ship_replacement":
            c.status, c.deadline = "replacement_shipped", None
        elif name == "deliver_replacement":
            c.status = "exchanged"
        elif name == "upload_refund_voucher":
            target = self.voucher_case(o)
            assert target is not None
            if target.status == "compensated":
                target.debt = False
            else:
                target.status, target.deadline = "refunded", None
                o.pay_user(target)
