"""Douyin (抖店) push messages (消息推送, SPEC section 10) as ledger commands.

A push body is a JSON array of messages `{"tag", "msg_id", "data"}` (`msgId` is read too;
`data` is a JSON string or an object).  Each message becomes at most one ledger command,
chosen by its tag, the case kind (`aftersale_type`) and the state the ledger holds for the
order at the message's time (its due timeouts applied): a step still open becomes the
command that takes it; a step the ledger had already taken becomes `reconcile`, which
records the platform's account as agreeing or as a discrepancy; a message that carries
too little to decide, or that the ledger has no command for, is reported, with why.
docs/platforms/douyin.md is the table this module implements, tag by tag.

The command's id is `douyin:<msg_id>`: a message delivered twice is applied once.
Amounts are fen; times are Unix seconds, read in Asia/Shanghai.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aftersales.application import commands as cmd
from aftersales.domain import rules
from aftersales.domain.cases import ReturnCase
from aftersales.domain.order import Order
from aftersales.domain.states import CaseKind, CaseStatus, OrderStatus, Payment
from aftersales.errors import CommandRefused

SOURCE = "douyin"
ZONE = ZoneInfo("Asia/Shanghai")

#: aftersale_type: the kind of case, and whether it is a refund before shipment.
KINDS = {0: (CaseKind.RETURN, False), 1: (CaseKind.REFUND, False),
         2: (CaseKind.REFUND, True), 3: (CaseKind.EXCHANGE, False)}
#: The order of messages of the same second: by the step of an order's life they tell
#: (the tag), except TradeCanceled, which a refund before shipment causes and follows,
#: and ArbitrateAudited, whose ruling for the user causes the approval beside it.
RANK = {106: 299, 216: 199}
#: arbitrate_status of a ruling: for whom.
RULED_FOR = {2: "user", 3: "merchant"}
_BLAMES = ("merchant", "user", "both", "platform", "creator")


@dataclass(frozen=True)
class Message:
    """One push message: its tag, id and data, with the business time it carries."""

    tag: int
    msg_id: str
    data: dict[str, Any]
    at: datetime

    @property
    def order_id(self) -> str:
        return str(self.data.get("s_id") or "")

    @property
    def command_id(self) -> str:
        return f"{SOURCE}:{self.msg_id}"


@dataclass(frozen=True)
class Skipped:
    """A message that becomes no command: `ignored` (nothing for the ledger to do: the
    step is recorded already, or the tag has no ledger step) or `reported` (it carries
    too little to decide: not guessed)."""

    status: str
    reason: str


Decision = cmd.OrderCommand | Skipped


@dataclass(frozen=True)
class Tag:
    name: str
    time: tuple[str, ...]  # the data fields giving the message's business time, in order
    decide: Callable[[Message, Order | None], Decision]


def is_push(text: str) -> bool:
    """Whether a line of a feed is a push body (an array, or one message object) rather
    than a ledger command line (an object with a `command`)."""
    if text.startswith("["):
        return True
    if not text.startswith("{"):
        return False
    try:
        found = json.loads(text)
    except (ValueError, RecursionError):
        return False  # refused where it is read as a command
    return isinstance(found, dict) and "command" not in found and "tag" in found


def envelope(line: str) -> list[object]:
    """The raw messages of one push body (a JSON array; one object is a body of one), or
    `CommandRefused('INPUT', …)`."""
    try:
        body = json.loads(line)
    except json.JSONDecodeError as e:
        raise CommandRefused(rules.INPUT, f"not JSON: {e.msg} at column {e.colno}") from None
    except (ValueError, RecursionError):  # a number too long, nesting too deep
        raise CommandRefused(rules.INPUT, "not JSON a push body can be") from None
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise CommandRefused(rules.INPUT, "a push body is a JSON array of messages")
    return body


def parse_messages(line: str) -> list[Message | Skipped | CommandRefused]:
    """Each message of one push body, on its own: read, ignored (a tag the ledger does not
    read), or refused `INPUT` naming the message and field; the body's other messages
    stand.  `CommandRefused` for the body as a whole when it is not an array."""
    found: list[Message | Skipped | CommandRefused] = []
    for n, raw in enumerate(envelope(line)):
        try:
            found.append(_message(n, raw))
        except CommandRefused as refused:
            found.append(refused)
    return found


def parse_body(line: str) -> list[Message]:
    """The messages of one push body, or the first `CommandRefused('INPUT', …)`."""
    found = []
    for m in parse_messages(line):
        if isinstance(m, CommandRefused):
            raise m
        if isinstance(m, Message):
            found.append(m)
    return found


def _message(n: int, raw: object) -> Message | Skipped:
    where = f"message {n + 1}"
    if not isinstance(raw, dict):
        raise CommandRefused(rules.INPUT, f"{where}: must be an object with tag, msg_id, data")
    tag, msg_id = raw.get("tag"), raw.get("msg_id", raw.get("msgId"))
    if isinstance(tag, str) and tag.strip().isdigit() and len(tag) < 10:
        tag = int(tag)
    if not isinstance(tag, int) or isinstance(tag, bool):
        raise CommandRefused(rules.INPUT, f"{where}: field 'tag': expected a whole number, "
                             f"got {tag!r}")
    if tag not in TAGS:
        return Skipped("ignored", f"tag {tag} is not one the ledger reads")
    if not isinstance(msg_id, str | int) or not str(msg_id).strip():
        raise CommandRefused(rules.INPUT, f"{where}: field 'msg_id': required")
    data = raw.get("data")
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise CommandRefused(rules.INPUT, f"{where}: field 'data': not JSON: {e.msg}"
                                 ) from None
    if not isinstance(data, dict):
        raise CommandRefused(rules.INPUT, f"{where}: field 'data': expected an object")
    fields = (*TAGS[tag].time, "update_time")
    at = next((data[f] for f in fields if data.get(f) not in (None, "", 0)), None)
    if at is None:
        raise CommandRefused(rules.INPUT, f"{where} (tag {tag}): no time: expected "
                             f"{' or '.join(repr(f) for f in fields)}")
    return Message(tag, str(msg_id), data, unix(at, f"{where}: field 'time'"))


def unix(value: object, where: str) -> datetime:
    """Unix seconds as an instant, in Asia/Shanghai."""
    try:
        seconds = int(str(value)) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None:
        raise CommandRefused(rules.INPUT, f"{where}: expected Unix seconds, got "
                             f"{str(value)[:40]!r}")
    if not 946684800 <= seconds < 4102444800:  # 2000 to 2100
        raise CommandRefused(rules.INPUT, f"{where}: {seconds} Unix seconds is not a date "
                             "between 2000 and 2100")
    return datetime.fromtimestamp(seconds, ZONE)


def decide(message: Message, order: Order | None) -> Decision:
    """The command a message becomes on the order as the ledger holds it at the message's
    time (None: never placed), or why it becomes none."""
    spec = TAGS.get(message.tag)
    if spec is None:
        return Skipped("ignored", f"tag {message.tag} is not one the ledger reads")
    if not message.order_id:
        return Skipped("reported", f"{spec.name}: no s_id (the sub-order: the ledger's "
                       "order_id)")
    return spec.decide(message, order)


# --- building commands -----------------------------------------------------------------

def _command(model: type[cmd.OrderCommand], m: Message, **fields: Any) -> cmd.OrderCommand:
    return cmd.build(model, {"order_id": m.order_id, "at": m.at,
                             "command_id": m.command_id, **fields})


def _reconcile(m: Message, order: Order, fact: str, **fields: Any) -> cmd.OrderCommand:
    """The platform's account of a step the ledger had taken: recorded at the message's
    time, or at the order's latest event if that is later (a late account is recorded
    when it arrives, not refused `TIME`), the step's own time beside it."""
    at = max(m.at, order.last_at)
    return cmd.build(cmd.Reconcile, {
        "order_id": m.order_id, "at": at, "command_id": m.command_id, "source": SOURCE,
        "ref": m.msg_id, "fact": fact, "step_at": m.at, **fields})


def _text(m: Message, *names: str, default: str = "") -> str:
    for name in names:
        value = m.data.get(name)
        if value not in (None, ""):
            return str(value)
    return default


def _amount(m: Message, name: str = "refund_amount") -> int | None:
    value = m.data.get(name)
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise CommandRefused(rules.INPUT, f"field {name!r}: expected fen as a whole number, "
                             f"got {value!r}") from None


def _shipping(model: type[cmd.OrderCommand], name: str, m: Message) -> Decision:
    """A command with the carrier and tracking number a message gives (reported if not)."""
    carrier = _text(m, "company_code", "logistics_company", "company")
    tracking = _text(m, "logistics_code", "tracking_no")
    if not carrier or not tracking:
        return Skipped("reported", f"{name}: no carrier and tracking number "
                       "(logistics_company, logistics_code)")
    return _command(model, m, carrier=carrier, tracking_no=tracking)


def _unplaced(name: str, order_id: str) -> Skipped:
    return Skipped("reported", f"{name}: order {order_id} is not in the ledger: place it "
                   "first, from an order export or a place_order line (the push carries "
                   "no amounts)")


# --- order tags (100-106) --------------------------------------------------------------

def _trade_create(m: Message, order: Order | None) -> Decision:
    if order is None:
        return _unplaced("TradeCreate", m.order_id)
    return Skipped("ignored", "TradeCreate: the order is placed")


def _trade_paid(m: Message, order: Order | None) -> Decision:
    if order is None:
        return _unplaced("TradePaid", m.order_id)
    cod = str(m.data.get("pay_type", "")) == "0"
    if cod != (order.payment is Payment.COD):
        return Skipped("reported", f"TradePaid: pay_type {m.data.get('pay_type')!r} says "
                       f"{'cod' if cod else 'online'}, the ledger's order is "
                       f"{order.payment.value}")
    if cod:
        return Skipped("ignored", "TradePaid of a cod order: paid on delivery; the "
                       "merchant's confirmation is confirm_order")
    if order.status not in (OrderStatus.AWAITING_PAYMENT, OrderStatus.CANCELLED):
        return Skipped("ignored", f"TradePaid: the order is {order.status.value} already")
    return _command(cmd.Pay, m)  # on a cancelled order: refused, and said


def _seller_ship(m: Message, order: Order | None) -> Decision:
    if order is None:
        return _unplaced("SellerShip", m.order_id)
    if order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
        return Skipped("ignored", f"SellerShip: the order is {order.status.value} already")
    return _shipping(cmd.Ship, "SellerShip", m)


def _trade_success(m: Message, order: Order | None) -> Decision:
    if order is None:
        return _unplaced("TradeSuccess", m.order_id)
    if order.status is OrderStatus.DELIVERED:
        return Skipped("ignored", "TradeSuccess: the order is delivered already")
    return _command(cmd.Deliver, m)


def _trade_canceled(m: Message, order: Order | None) -> Decision:
    if order is None:
        return _unplaced("TradeCanceled", m.order_id)
    if order.status is OrderStatus.CANCELLED:
        return Skipped("ignored", f"TradeCanceled: the ledger cancelled it already "
                       f"(by {order.cancelled_by})")
    by = _text(m, "cancel_by")
    by = by if by in ("user", "merchant") else "platform"
    return _command(cmd.Cancel, m, by=by,
                    reason=_text(m, "cancel_reason", default="cancelled on Douyin"))


# --- after-sale tags (200-216) ---------------------------------------------------------

def _refund_created(m: Message, order: Order | None) -> Decision:
    if order is None:
        return _unplaced("RefundCreated", m.order_id)
    found = KINDS.get(_int(m.data.get("aftersale_type"), -1))
    if found is None:
        return Skipped("reported", f"RefundCreated: aftersale_type "
                       f"{m.data.get('aftersale_type')!r} is not 0, 1, 2 or 3")
    kind, before_shipment = found
    shipped = order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED)
    if kind is CaseKind.REFUND and before_shipment == shipped:
        return Skipped("reported", f"RefundCreated: aftersale_type "
                       f"{m.data.get('aftersale_type')} is a refund "
                       f"{'before' if before_shipment else 'after'} shipment, and the "
                       f"ledger's order is {order.status.value}")
    case = order.open_case
    if case is not None and case.kind is kind:
        return Skipped("ignored", f"RefundCreated: case {case.number} ({kind.value}) is "
                       "open already")
    reason = _text(m, "reason", "reason_code", default="asked on Douyin")
    amount = _amount(m)
    if kind is CaseKind.RETURN:
        return _command(cmd.RequestReturn, m, amount=amount, reason=reason)
    if kind is CaseKind.EXCHANGE:
        return _command(cmd.RequestExchange, m, amount=amount, reason=reason)
    return _command(cmd.RequestRefund, m, reason=reason,
                    **({} if before_shipment else {"amount": amount}))


def _int(value: object, otherwise: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return otherwise


CaseDecide = Callable[[Message, Order, ReturnCase], Decision]


def _on_case(name: str, decide: CaseDecide) -> Callable[[Message, Order | None], Decision]:
    """A tag about the order's latest case: reported when the ledger has no such order or
    case (its RefundCreated was not read), else decided on the case."""
    def on(m: Message, order: Order | None) -> Decision:
        if order is None:
            return _unplaced(name, m.order_id)
        case = order.latest_case
        if case is None:
            return Skipped("reported", f"{name}: order {m.order_id} has no after-sale case "
                           "in the ledger (its RefundCreated was not read)")
        return decide(m, order, case)
    return on


def _agreed(m: Message, order: Order, case: ReturnCase) -> Decision:
    """201 RefundAgreed: an approval of a request; on goods coming back, the receipt."""
    if case.status is CaseStatus.REQUESTED:
        return _command(cmd.ApproveReturn, m)
    if case.status is CaseStatus.IN_TRANSIT:
        return _command(cmd.ConfirmReceipt, m)
    receipt = case.kind is not CaseKind.REFUND and case.decided_at is not None and (
        case.received_at is not None)
    return _reconcile(m, order, "received" if receipt else "approved")


def _return_agreed(m: Message, order: Order, case: ReturnCase) -> Decision:
    """202 ReturnApplyAgreed: the request of a return (or exchange) approved."""
    if case.status is CaseStatus.REQUESTED:
        return _command(cmd.ApproveReturn, m)
    return _reconcile(m, order, "approved")


def _goods_sent(m: Message, order: Order, case: ReturnCase) -> Decision:
    """203 BuyerReturnGoods: the user's tracking number."""
    if case.status is CaseStatus.APPROVED:
        return _shipping(cmd.SubmitTracking, "BuyerReturnGoods", m)
    if case.tracking_at is not None:
        return Skipped("ignored", f"BuyerReturnGoods: case {case.number}'s tracking is "
                       "recorded already")
    return _reconcile(m, order, "received", by="user")


def _refused(name: str, goods: bool) -> Callable[[Message, Order | None], Decision]:
    """204 RefundRefused (a request, or the goods that came back), 205 ReturnApplyRefused
    (a request)."""
    def decide(m: Message, order: Order, case: ReturnCase) -> Decision:
        reason = _text(m, "refuse_reason", "reason", "reason_code", default="refused on "
                       "Douyin")
        if case.status is CaseStatus.REQUESTED:
            return _command(cmd.RejectReturn, m, reason=reason)
        if goods and case.status is CaseStatus.IN_TRANSIT:
            return _command(cmd.RejectReceipt, m, reason=reason)
        return _reconcile(m, order, "rejected")
    return _on_case(name, decide)


def _refund_success(m: Message, order: Order, case: ReturnCase) -> Decision:
    """206 RefundSuccess: the user was refunded: a cod merchant's voucher, or the
    platform's refund the ledger made itself."""
    amount = _amount(m)
    if order.payment is Payment.COD and case.kind is CaseKind.RETURN and case.status in (
            CaseStatus.RECEIVED, CaseStatus.COMPENSATED) and case.voucher_at is None:
        # the merchant's refund: on time, or late (R-COD-4: it settles the merchant's debt)
        if amount is None:
            return Skipped("reported", "RefundSuccess of a cod return: no refund_amount "
                           "for the voucher")
        return _command(cmd.UploadRefundVoucher, m, amount=amount,
                        voucher_ref=f"{SOURCE}-{_text(m, 'aftersale_id', default=m.msg_id)}")
    return _reconcile(m, order, "refunded", amount=amount)


def _closed(m: Message, order: Order, case: ReturnCase) -> Decision:
    """207 RefundClosed: the user withdrew (or the platform closed the case)."""
    if case.status in (CaseStatus.REQUESTED, CaseStatus.APPROVED):
        return _command(cmd.WithdrawReturn, m)
    return _reconcile(m, order, "closed")


def _modified(m: Message, order: Order | None) -> Decision:
    return Skipped("ignored", "RefundModified: the ledger keeps the request as it was "
                   "asked (it has no command for a changed request)")


def _deadline(m: Message, order: Order, case: ReturnCase) -> Decision:
    """209 ExpirationChange: the platform's deadline for the case, held against the
    rules'."""
    if m.data.get("status_deadline") in (None, ""):
        return Skipped("reported", "ExpirationChange: no status_deadline")
    return _reconcile(m, order, "deadline",
                      deadline=unix(m.data["status_deadline"], "field 'status_deadline'"))


def _exchange_confirmed(m: Message, order: Order, case: ReturnCase) -> Decision:
    """211 ExchangeComfirmed (sic): the merchant has the goods of an exchange."""
    if case.kind is not CaseKind.EXCHANGE:
        return Skipped("reported", f"ExchangeComfirmed: case {case.number} is a "
                       f"{case.kind.value}, not an exchange")
    if case.status is CaseStatus.IN_TRANSIT:
        return _command(cmd.ConfirmReceipt, m)
    return _reconcile(m, order, "received")


def _appealed(m: Message, order: Order, case: ReturnCase) -> Decision:
    """212 ArbitrateApplied: the user asked the platform to intervene."""
    if case.arbitration is not None:
        return Skipped("ignored", f"ArbitrateApplied: case {case.number} is appealed "
                       "already")
    return _command(cmd.Appeal, m, reason=_text(
        m, "arbitrate_reason", "reason", default="arbitration applied on Douyin"))


def _evidence_asked(m: Message, order: Order | None) -> Decision:
    return Skipped("ignored", "ArbitrateSubmiting: the ledger's A-2 deadline already "
                   "awaits the merchant's evidence")


def _evidence_sent(m: Message, order: Order, case: ReturnCase) -> Decision:
    """214 ArbitrateSubmited: the merchant's evidence is in."""
    if case.arbitration is None or case.arbitration.evidence_at is not None or \
            case.status is not CaseStatus.ARBITRATING:
        return Skipped("ignored", "ArbitrateSubmited: no dispute awaits evidence")
    ref = f"{SOURCE}-{_text(m, 'arbitrate_id', 'aftersale_id', default=m.msg_id)}"
    return _command(cmd.SubmitEvidence, m, evidence=[ref],
                    note=_text(m, "evidence_note", default="submitted on Douyin"))


def _cancelled_appeal(m: Message, order: Order | None) -> Decision:
    return Skipped("reported", "ArbitrateCancelled: the ledger has no withdrawal of an "
                   "appeal (docs/rules.md, section 8): the dispute stays as recorded")


def _audited(m: Message, order: Order, case: ReturnCase) -> Decision:
    """216 ArbitrateAudited: the platform's ruling."""
    outcome = RULED_FOR.get(_int(m.data.get("arbitrate_status"), -1))
    if outcome is None:
        return Skipped("reported", f"ArbitrateAudited: arbitrate_status "
                       f"{m.data.get('arbitrate_status')!r} is not a ruling (2 for the "
                       "buyer, 3 for the merchant)")
    if case.status is not CaseStatus.ARBITRATING:
        return _reconcile(m, order, "ruled", outcome=outcome)
    blame = _text(m, "arbitrate_blame", "blame")
    if blame not in _BLAMES:
        return Skipped("reported", "ArbitrateAudited: no blame (arbitrate_blame: merchant, "
                       "user, both, platform or creator); the ruling is not guessed")
    return _command(cmd.Arbitrate, m, outcome=outcome, blame=blame,
                    note=_text(m, "arbitrate_conclusion", default="ruled on Douyin"))


def _case_tag(name: str, time: tuple[str, ...], decide: CaseDecide) -> Tag:
    return Tag(name, time, _on_case(name, decide))


#: Every tag the ledger reads: its name, the data fields of its business time, and what it
#: becomes (docs/platforms/douyin.md draws the same table).
TAGS: dict[int, Tag] = {
    100: Tag("TradeCreate", ("create_time",), _trade_create),
    101: Tag("TradePaid", ("pay_time",), _trade_paid),
    102: Tag("SellerShip", ("ship_time",), _seller_ship),
    103: Tag("TradeSuccess", ("complete_time",), _trade_success),
    106: Tag("TradeCanceled", ("cancel_time",), _trade_canceled),
    200: Tag("RefundCreated", ("apply_time",), _refund_created),
    201: _case_tag("RefundAgreed", ("agree_time",), _agreed),
    202: _case_tag("ReturnApplyAgreed", ("agree_time",), _return_agreed),
    203: _case_tag("BuyerReturnGoods", ("return_time",), _goods_sent),
    204: Tag("RefundRefused", ("refuse_time",), _refused("RefundRefused", goods=True)),
    205: Tag("ReturnApplyRefused", ("refuse_time",),
             _refused("ReturnApplyRefused", goods=False)),
    206: _case_tag("RefundSuccess", ("success_time",), _refund_success),
    207: _case_tag("RefundClosed", ("close_time",), _closed),
    208: Tag("RefundModified", (), _modified),
    209: _case_tag("ExpirationChange", (), _deadline),
    211: _case_tag("ExchangeComfirmed", (), _exchange_confirmed),
    212: _case_tag("ArbitrateApplied", (), _appealed),
    213: Tag("ArbitrateSubmiting", (), _evidence_asked),
    214: _case_tag("ArbitrateSubmited", (), _evidence_sent),
    215: Tag("ArbitrateCancelled", (), _cancelled_appeal),
    216: _case_tag("ArbitrateAudited", (), _audited),
}
