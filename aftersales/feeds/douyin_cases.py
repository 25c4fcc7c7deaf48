"""Douyin's after-sale tags (200-216, topic doudian_refund_*) as ledger commands: each
decided on the case its `aftersale_id` names (never on whichever case is latest), by the
case's kind and state (docs/platforms/douyin.md, "The after-sale tags")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from aftersales.application import commands as cmd
from aftersales.domain.cases import ReturnCase
from aftersales.domain.states import CaseKind, CaseStatus, OrderStatus, Payment
from aftersales.feeds.decision import SOURCE, Context, Decision, Skipped
from aftersales.feeds.pushes import identifier, refuse, time_of

#: aftersale_type: the kind of case, and whether it is a refund before shipment; 4-8 are
#: after-sales the ledger does not rule (counted by type and ignored).
KINDS = {0: (CaseKind.RETURN, False), 1: (CaseKind.REFUND, False),
         2: (CaseKind.REFUND, True), 3: (CaseKind.EXCHANGE, False)}
NOT_RULED = range(4, 9)
#: 201 RefundAgreed's op_role: who agreed.
ROLES = {1: "user", 2: "merchant", 3: "platform", 4: "system"}
#: 216 ArbitrateAudited's arbitrate_conclusion: for whom (3: the user, refunded at once).
CONCLUSIONS = {1: "user", 2: "merchant", 3: "user"}
#: aftersale_status 12 (售后成功): the after-sale succeeded (for an exchange: the
#: replacement arrived); a public SDK's enumeration names 14 for an exchange that
#: succeeded.
SUCCEEDED = (12, 14)


def refund_created(c: Context) -> Decision:
    order, ref = c.order, c.m.case_ref
    if ref is None:
        return Skipped("reported", "RefundCreated: no aftersale_id (the case)")
    if (case := order.case_by_ref(ref)) is not None:
        return Skipped("ignored", f"RefundCreated: case {case.number} ({ref}) is in the "
                       "ledger already")
    kind_no = c.number("aftersale_type")
    if kind_no in NOT_RULED:
        return Skipped("ignored", f"RefundCreated: aftersale_type {kind_no} is not an "
                       "after-sale the ledger rules")
    found = KINDS.get(-1 if kind_no is None else kind_no)
    if found is None:
        return Skipped("reported", f"RefundCreated: aftersale_type {kind_no!r} is not 0-8")
    kind, before_shipment = found
    shipped = order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED)
    if kind is CaseKind.REFUND and before_shipment == shipped:
        return Skipped("reported", f"RefundCreated: aftersale_type {kind_no} is a refund "
                       f"{'before' if before_shipment else 'after'} shipment, and the "
                       f"ledger's order is {order.status.value}")
    reason = c.text("reason", "reason_code", default="asked on Douyin")
    goods = _goods(c)
    if goods is None and kind is not CaseKind.EXCHANGE and not before_shipment:
        return Skipped("reported", f"RefundCreated: no refund_amount: the amount asked of a "
                       f"{kind.value} is not guessed")
    fields: dict[str, Any] = {"reason": reason, "case_ref": ref}
    if kind is CaseKind.RETURN:
        return [c.command(cmd.RequestReturn, amount=goods, **fields)]
    if kind is CaseKind.EXCHANGE:
        return [c.command(cmd.RequestExchange, amount=goods, **fields)]
    return [c.command(cmd.RequestRefund, **fields,
                      **({} if before_shipment else {"amount": goods}))]


def _goods(c: Context) -> int | None:
    """The goods part of the amount asked (`refund_amount` less `refund_post_amount`);
    None where nothing is given (an exchange's 0: the refundable goods amount)."""
    asked = c.fen("refund_amount")
    if not asked:
        return None
    goods = asked - (c.fen("refund_post_amount") or 0)
    if goods <= 0:
        raise refuse(f"field 'refund_post_amount': {c.data.get('refund_post_amount')} is "
                     f"not less than refund_amount {asked}")
    return goods


CaseDecide = Callable[[Context, ReturnCase], Decision]


def on_case(decide_case: CaseDecide) -> Callable[[Context], Decision]:
    """A tag about the case its aftersale_id names: reported when the ledger has no such
    case (its RefundCreated was not read); a case that is not the order's latest is past
    its steps: the message is its account, reconciled on it."""
    def on(c: Context) -> Decision:
        name = c.m.name
        if c.m.case_ref is None:
            return Skipped("reported", f"{name}: no aftersale_id (the case)")
        case = c.order.case_by_ref(c.m.case_ref)
        if case is None:
            return Skipped("reported", f"{name}: order {c.order_id} has no after-sale case "
                           f"{c.m.case_ref} in the ledger (its RefundCreated was not read)")
        decided = decide_case(c, case)
        return _exchange_done(c, case, decided)
    return on


def _exchange_done(c: Context, case: ReturnCase, decided: Decision) -> Decision:
    """A message of an exchange whose replacement is on its way, showing aftersale_status
    12 (售后成功): the replacement arrived (no push tells its delivery)."""
    if case.kind is not CaseKind.EXCHANGE or c.m.tag == 211 or c.number(
            "aftersale_status") not in SUCCEEDED or case is not c.order.latest_case:
        return decided
    shipped = case.status is CaseStatus.REPLACEMENT_SHIPPED or (
        isinstance(decided, list) and any(isinstance(x, cmd.ShipReplacement) for x in decided))
    if not shipped:
        return decided
    done = [c.command(cmd.DeliverReplacement)]
    if isinstance(decided, Skipped):
        return done
    return [*(x for x in decided if not isinstance(x, cmd.Reconcile)), *done]


def _latest(c: Context, case: ReturnCase) -> bool:
    return case is c.order.latest_case


def _deadline_of(case: ReturnCase) -> datetime | None:
    return case.deadline.at if case.deadline is not None and case.is_open else None


def agreed(c: Context, case: ReturnCase) -> Decision:
    """201 RefundAgreed: a refund's approval, or the receipt of a return's or exchange's
    goods; who agreed is op_role's (the platform's timer is reconciled against the
    ledger's own timeout, never recorded as the merchant's act)."""
    role = ROLES.get(c.number("op_role", -1) or -1)
    if role is None:
        return Skipped("reported", f"RefundAgreed: op_role {c.data.get('op_role')!r} is "
                       "not 1-4: who agreed is not guessed")
    refund = case.kind is CaseKind.REFUND
    if _latest(c, case) and role == "merchant":
        if refund and case.status is CaseStatus.REQUESTED:
            return [c.command(cmd.ApproveReturn)]
        if not refund and case.status is CaseStatus.IN_TRANSIT:
            return [c.command(cmd.ConfirmReceipt)]
    return _timer(c, case, "approved" if refund else "received", role)


def _timer(c: Context, case: ReturnCase, fact: str, by: str | None) -> Decision:
    """An account of a step; the platform's timer (by system) near the ledger's pending
    deadline is recorded after it, so that the ledger's own timeout is taken first."""
    due = _deadline_of(case)
    after = None
    if by == "system" and due is not None and abs(due - c.m.at) <= c.tolerance.timers:
        after = due
    return c.reconcile(fact, case, by=by, after=after)


def return_agreed(c: Context, case: ReturnCase) -> Decision:
    """202 ReturnApplyAgreed: the request of a return (or exchange) approved, by the
    merchant, or by the platform's timer at the deadline (op_role 4, where given)."""
    role = ROLES.get(c.number("op_role", 2) or 2)
    if _latest(c, case) and case.status is CaseStatus.REQUESTED and role == "merchant":
        return [c.command(cmd.ApproveReturn)]
    return _timer(c, case, "approved", None if c.data.get("op_role") is None else role)


def goods_sent(c: Context, case: ReturnCase) -> Decision:
    """203 BuyerReturnGoods: the user sent the goods back (no carrier, no number; taken
    where a message has them)."""
    if _latest(c, case) and case.status is CaseStatus.APPROVED:
        logistics = c.data.get("logistics_msg")
        logistics = logistics if isinstance(logistics, dict) else c.data
        carrier = logistics.get("express_company_id") or logistics.get("company_code")
        tracking = logistics.get("logistics_code") or logistics.get("tracking_no")
        return [c.command(
            cmd.SubmitTracking,
            carrier=None if carrier in (None, "") else identifier(carrier, "field carrier"),
            tracking_no=None if tracking in (None, "") else identifier(tracking,
                                                                       "field tracking"))]
    if case.tracking_at is not None:
        return Skipped("ignored", f"BuyerReturnGoods: case {case.number}'s return is "
                       "recorded already")
    # sent after the case ended (closed for want of it): the platform's account differs
    return c.reconcile("received", case, by="user")


def refused(goods: bool) -> CaseDecide:
    """204 RefundRefused (a request, or the goods that came back), 205 ReturnApplyRefused
    (a request)."""
    def decide_case(c: Context, case: ReturnCase) -> Decision:
        reason = c.text("refuse_reason", "reject_reason", "reason", "reason_code",
                        default="refused on Douyin")
        if _latest(c, case):
            if case.status is CaseStatus.REQUESTED:
                return [c.command(cmd.RejectReturn, reason=reason)]
            if goods and case.status is CaseStatus.IN_TRANSIT:
                return [c.command(cmd.RejectReceipt, reason=reason)]
        return c.reconcile("rejected", case)
    return decide_case


def refund_success(c: Context, case: ReturnCase) -> Decision:
    """206 RefundSuccess: the money arrived: a cod merchant's refund (its voucher), or the
    platform's account of a refund the ledger made itself (reconciled, within the
    refunds' tolerance)."""
    asked = c.fen("refund_amount")
    if _voucher_case(c) is case and case.voucher_at is None:
        goods = _goods(c)
        if goods is None:
            return Skipped("reported", "RefundSuccess of a cod return: no refund_amount "
                           "for the voucher")
        return [c.command(cmd.UploadRefundVoucher, amount=goods,
                          voucher_ref=f"{SOURCE}-{c.m.case_ref}")]
    return c.reconcile("refunded", case, money=True, amount=asked)


def _voucher_case(c: Context) -> ReturnCase | None:
    """The case a cod merchant's voucher would settle now (as `upload_refund_voucher`
    chooses it): the latest case, a return received; else the latest case the merchant
    owes the platform for (compensated at the voucher deadline)."""
    if c.order.payment is not Payment.COD:
        return None
    latest = c.order.latest_case
    if latest is not None and latest.kind is CaseKind.RETURN and (
            latest.status is CaseStatus.RECEIVED):
        return latest
    return next((x for x in reversed(c.order.cases) if x.merchant_debt > 0
                 and x.kind is CaseKind.RETURN), None)


def closed(c: Context, case: ReturnCase) -> Decision:
    """207 RefundClosed: the user withdrew, or the platform closed the case."""
    if _latest(c, case) and case.status in (CaseStatus.REQUESTED, CaseStatus.APPROVED):
        return [c.command(cmd.WithdrawReturn)]
    return c.reconcile("closed", case)


def modified(c: Context, case: ReturnCase) -> Decision:
    """208 RefundModified: the user amended the open request's amount."""
    kind_no = c.number("aftersale_type")
    found = KINDS.get(-1 if kind_no is None else kind_no)
    if found is not None and found[0] is not case.kind:
        return Skipped("reported", f"RefundModified: the type changed to aftersale_type "
                       f"{kind_no}: the ledger amends amounts, not kinds")
    goods = _goods(c)
    if goods is None or goods == case.amount:
        return Skipped("ignored", "RefundModified: the amount asked is unchanged")
    if not _latest(c, case):
        return Skipped("reported", f"RefundModified: case {case.number} is not the order's "
                       "latest: an amendment acts on the open case only")
    return [c.command(cmd.AmendRequest, amount=goods,
                      reason=c.text("reason", "reason_code", default="amended on Douyin"))]


def deadline_changed(c: Context, case: ReturnCase) -> Decision:
    """209 ExpirationChange: the platform moved the case's pending deadline: the ledger's
    timer moves with it (D-2 by the platform).  The platform's account, reconciled: a
    deadline the ledger has no longer pending (its timer took the step: the step now
    pending began by that timeout, and the platform's deadline was the passed one's), one
    not after the message, or the one already there."""
    if c.data.get("status_deadline") in (None, "", 0):
        return Skipped("reported", "ExpirationChange: no status_deadline")
    until = time_of(c.data["status_deadline"], "field 'status_deadline'")
    ours = _deadline_of(case)
    if ours is None or not _latest(c, case) or until <= c.m.at or _begun_by_timer(case) or (
            int(ours.timestamp()) == int(until.timestamp())):
        return c.reconcile("deadline", case, deadline=until)
    return [c.command(cmd.SetDeadline, until=until,
                      reason=c.text("reason", default="ExpirationChange on Douyin"))]


def _begun_by_timer(case: ReturnCase) -> bool:
    """Whether the step the case is in began by the ledger's own timer (a request
    approved, goods received or a dispute ruled at a deadline)."""
    ruling = case.arbitration
    if ruling is not None and ruling.ruled_at is not None and case.status in (
            CaseStatus.APPROVED, CaseStatus.RECEIVED):
        return ruling.ruled_by == "system"
    if case.status is CaseStatus.APPROVED:
        return case.decided_by == "system"
    if case.status is CaseStatus.RECEIVED:
        return case.received_by == "system"
    return False


def exchange_confirmed(c: Context, case: ReturnCase) -> Decision:
    """211 ExchangeComfirmed (sic): the merchant has the goods back and shipped the
    replacement: two steps, in that order."""
    if case.kind is not CaseKind.EXCHANGE:
        return Skipped("reported", f"ExchangeComfirmed: case {case.number} is a "
                       f"{case.kind.value}, not an exchange")
    if not _latest(c, case):
        return c.reconcile("received", case)
    if case.status is CaseStatus.IN_TRANSIT:
        return [c.command(cmd.ConfirmReceipt), c.command(cmd.ShipReplacement)]
    if case.status is CaseStatus.RECEIVED:
        return [c.command(cmd.ShipReplacement)]
    return c.reconcile("received", case)


def _not_latest(c: Context, case: ReturnCase) -> Skipped:
    """A dispute's step on a case that is not the order's latest: the ledger's commands
    act on the latest case, so it is reported, never applied to another case."""
    latest = c.order.latest_case
    return Skipped("reported", f"{c.m.name}: case {case.number} ({c.m.case_ref}) is not "
                   f"the order's latest (case {latest.number if latest else '-'}): the "
                   "ledger's dispute steps act on the latest case")


def appealed(c: Context, case: ReturnCase) -> Decision:
    """212 ArbitrateApplied: the user asked the platform to intervene."""
    if case.arbitration is not None:
        return Skipped("ignored", f"ArbitrateApplied: case {case.number} is appealed "
                       "already")
    if not _latest(c, case):
        return _not_latest(c, case)
    return [c.command(cmd.Appeal, reason=c.text("arbitrate_reason", "reason",
                                                default="arbitration applied on Douyin"))]


def evidence_asked(c: Context, case: ReturnCase) -> Decision:
    return Skipped("ignored", "ArbitrateSubmiting: the ledger's A-2 deadline already "
                   "awaits the merchant's evidence")


def evidence_sent(c: Context, case: ReturnCase) -> Decision:
    """214 ArbitrateSubmited: the merchant's evidence is in."""
    ruling = case.arbitration
    if ruling is None or ruling.evidence_at is not None or (
            case.status is not CaseStatus.ARBITRATING):
        return Skipped("ignored", "ArbitrateSubmited: no dispute awaits evidence")
    if not _latest(c, case):
        return _not_latest(c, case)
    ref = f"{SOURCE}-{c.text('arbitrate_id', default=c.m.msg_id)}"
    return [c.command(cmd.SubmitEvidence, evidence=[ref[:cmd.MAX_TEXT]],
                      note=c.text("evidence_note", default="submitted on Douyin"))]


def appeal_withdrawn(c: Context, case: ReturnCase) -> Decision:
    """215 ArbitrateCancelled: the user withdrew the appeal."""
    ruling = case.arbitration
    if ruling is None or case.status is not CaseStatus.ARBITRATING:
        return Skipped("ignored", "ArbitrateCancelled: no open dispute to withdraw")
    if not _latest(c, case):
        return _not_latest(c, case)
    return [c.command(cmd.WithdrawAppeal)]


def audited(c: Context, case: ReturnCase) -> Decision:
    """216 ArbitrateAudited: the platform's ruling, without blame (`unknown` until
    record_blame gives it)."""
    outcome = CONCLUSIONS.get(c.number("arbitrate_conclusion", -1) or -1)
    if outcome is None:
        return Skipped("reported", f"ArbitrateAudited: arbitrate_conclusion "
                       f"{c.data.get('arbitrate_conclusion')!r} is not a ruling (1 or 3 "
                       "for the user, 2 for the merchant)")
    if _latest(c, case) and case.status is CaseStatus.ARBITRATING:
        return [c.command(cmd.Arbitrate, outcome=outcome, blame="unknown",
                          note=c.text("arbitrate_opinion", "remark",
                                      default="ruled on Douyin"))]
    return c.reconcile("ruled", case, outcome=outcome)
