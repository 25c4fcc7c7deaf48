"""The commands and fields a platform feed needs to record what it reads faithfully (the
Douyin push messages, docs/platforms/douyin.md): tracking without a carrier or number, the
platform's case reference, the user's amendment of a request, the withdrawal of an appeal,
rulings whose blame is given later, and reconciliation of a given case, within a tolerance,
or of the order's cancellation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from aftersales import CommandRefused, Ledger, parse_command
from aftersales.domain.events import OrderEvent
from tests.scenario import DAY, GOODS, HOUR, POSTAGE, SECOND, Scenario

REF = "7130036489474212096"
BOTH = pytest.mark.parametrize("payment", ["online", "cod"])


def upcast(ledger: Ledger, event: OrderEvent, drop: str) -> OrderEvent:
    """`event` as an earlier version stored it: without the field `drop` (and without its
    class version), read back through the library."""
    stored = ledger.mapper.to_stored_event(event)
    state = json.loads(stored.state)
    assert state.pop("class_version") == 2
    state.pop(drop)
    read = ledger.mapper.to_domain_event(replace(stored, state=json.dumps(state).encode()))
    assert isinstance(read, OrderEvent)
    return read


# --- tracking without a carrier or number ---------------------------------------------------

@BOTH
def test_submit_tracking_without_carrier_or_number_shows_null_until_known(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_approved()
    s.do("submit_tracking")
    case = s.doc["return"]
    assert (case["status"], case["carrier"], case["tracking_no"]) == ("in_transit", None, None)
    assert case["deadline"] == (s.now + 7 * DAY).isoformat()  # R-3 runs as ever
    event = s.last("TrackingSubmitted")
    assert (event.carrier, event.tracking_no) == (None, None)  # type: ignore[attr-defined]


def test_submit_tracking_with_carrier_and_number_shows_them(ledger: Ledger) -> None:
    s = Scenario(ledger).to_in_transit()
    case = s.doc["return"]
    assert (case["carrier"], case["tracking_no"]) == ("YTO", "YT1")
    s2 = Scenario(ledger, order_id="D2").to_approved()
    s2.do("submit_tracking", carrier="SF")  # one of the two is known
    assert (s2.doc["return"]["carrier"], s2.doc["return"]["tracking_no"]) == ("SF", None)


def test_ship_replacement_without_carrier_or_number(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_exchange_received()
    s.do("ship_replacement")
    case = s.doc["return"]
    assert (case["status"], case["awaiting"], case["replacement_carrier"],
            case["replacement_tracking_no"]) == ("replacement_shipped", "carrier", None, None)
    s.do("deliver_replacement", DAY)
    assert s.case_status == "exchanged"


# --- the platform's case reference ----------------------------------------------------------

@pytest.mark.parametrize("kind", ["return", "refund", "exchange"])
def test_a_request_keeps_the_platform_s_case_ref(ledger: Ledger, kind: str) -> None:
    s = Scenario(ledger).to_delivered()
    s.do(f"request_{kind}", reason="size", case_ref=REF)
    assert s.doc["return"]["case_ref"] == REF
    order = ledger.get_order("D1")
    assert order is not None
    found = order.case_by_ref(REF)
    assert found is not None and found.number == 1 and found.ref == REF
    assert order.case_by_ref("7130036489474212097") is None
    assert s.last(f"{kind.capitalize()}Requested").case_ref == REF  # type: ignore[attr-defined]


def test_without_a_case_ref_the_case_has_none(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    assert s.doc["return"]["case_ref"] is None
    order = ledger.get_order("D1")
    assert order is not None and order.cases[0].ref is None


def test_FLOW_a_case_ref_that_names_another_case_of_the_order(ledger: Ledger) -> None:
    s = Scenario(ledger).to_delivered()
    s.do("request_refund", amount=3000, reason="scratched", case_ref=REF)
    refused = s.refused("FLOW", "request_return", reason="again", case_ref=REF)
    assert f"case_ref {REF} names case 1" in refused.reason  # not R-OPEN: it is that case
    s.do("approve_return")  # refunded: the case ended
    refused = s.refused("FLOW", "request_exchange", reason="again", case_ref=REF)
    assert "names case 1" in refused.reason
    s.do("request_return", reason="the rest", case_ref="7130036489474212097")
    order = ledger.get_order("D1")
    assert order is not None
    assert [c.ref for c in order.cases] == [REF, "7130036489474212097"]
    other = Scenario(ledger, order_id="D2").to_delivered()  # another order's cases apart
    other.do("request_return", reason="size", case_ref=REF)


def test_a_request_stored_before_case_refs_is_read_with_none(ledger: Ledger) -> None:
    s = Scenario(ledger, "cod").to_requested(amount=5000)
    old = upcast(ledger, s.last("ReturnRequested"), "case_ref")
    assert old.case_ref is None  # type: ignore[attr-defined]
    assert old.amount == 5000  # type: ignore[attr-defined]


@pytest.mark.parametrize("ref", ["", "a b", "x" * 65, 7130036489474212096])
def test_INPUT_a_case_ref_is_an_identifier(ref: object) -> None:
    line = {"command": "request_return", "order_id": "D1", "at": "2026-03-01T10:00:00+08:00",
            "case_ref": ref}
    with pytest.raises(CommandRefused) as info:
        parse_command(json.dumps(line))
    assert info.value.code == "INPUT" and "field 'case_ref'" in info.value.reason


# --- amend_request ----------------------------------------------------------------------------

@BOTH
def test_amend_request_changes_the_open_case_s_amount_and_keeps_its_deadline(
    ledger: Ledger, payment: str,
) -> None:
    s = Scenario(ledger, payment).to_requested(amount=5000)
    deadline = s.doc["return"]["deadline"]
    s.do("amend_request", amount=6000)
    event = s.last("RequestAmended")
    assert (event.old_amount, event.new_amount, event.reason,  # type: ignore[attr-defined]
            event.actor) == (5000, 6000, "", "user")
    case = s.doc["return"]
    assert (case["status"], case["amount"], case["deadline"]) == ("requested", 6000, deadline)
    order = ledger.get_order("D1")
    assert order is not None and order.cases[0].reason == "broken"  # no reason: kept
    s.do("amend_request", amount=GOODS, reason="both broken")
    assert order is not None
    order = ledger.get_order("D1")
    assert order is not None and order.cases[0].reason == "both broken"
    s.do("approve_return")
    s.do("submit_tracking")
    s.do("confirm_receipt", DAY)
    if payment == "online":
        assert s.doc["refunded_total"] == GOODS  # the amended amount
    else:
        s.refused("R-AMOUNT", "upload_refund_voucher", voucher_ref="V1", amount=5000)
        s.do("upload_refund_voucher", voucher_ref="V1", amount=GOODS)


def test_amend_request_of_a_refund_after_shipment_and_of_an_exchange(ledger: Ledger) -> None:
    s = Scenario(ledger).to_refund_after_shipment(amount=5000)
    s.do("amend_request", amount=3000, reason="only one")
    s.do("approve_return")
    assert s.doc["refunded_total"] == 3000
    e = Scenario(ledger, "cod", order_id="D2").to_exchange_requested(amount=2000)
    e.do("amend_request", amount=4000)
    assert e.doc["return"]["amount"] == 4000


def test_R_AMOUNT_an_amendment_above_the_refundable_goods(ledger: Ledger) -> None:
    s = Scenario(ledger).to_refund_after_shipment(amount=4000)
    s.do("approve_return")
    s.do("request_refund", amount=1000, reason="more")
    refused = s.refused("R-AMOUNT", "amend_request", amount=GOODS - 4000 + 1)
    assert f"refundable {GOODS - 4000}" in refused.reason
    s.do("amend_request", amount=GOODS - 4000)  # exactly what is left


def test_FLOW_amend_request_only_while_the_merchant_s_answer_is_awaited(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_delivered()
    assert "no after-sale case" in s.refused("FLOW", "amend_request", amount=100).reason
    s.do("request_return", reason="size")
    s.do("approve_return")
    refused = s.refused("FLOW", "amend_request", amount=100)
    assert "needs case 1 requested, not approved" in refused.reason
    s.do("withdraw_return")
    s.refused("FLOW", "amend_request", amount=100)


def test_FLOW_a_refund_before_shipment_is_not_amended(ledger: Ledger) -> None:
    s = Scenario(ledger).to_refund_before_shipment()
    refused = s.refused("FLOW", "amend_request", amount=GOODS)
    assert "F-1" in refused.reason
    assert s.doc["return"]["amount"] == GOODS + POSTAGE


def test_FLOW_an_amendment_after_the_system_approved_keeps_the_timeout(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_requested()
    s.refused("FLOW", "amend_request", 48 * HOUR + SECOND, amount=100)
    assert s.case_status == "approved"  # the timeout the refused command revealed
    assert [v["rule"] for v in s.doc["violations"]] == ["RETURN_RESPONSE_48H"]


def test_INPUT_amend_request_needs_an_amount(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    with pytest.raises(CommandRefused) as info:
        s.do("amend_request", reason="x")
    assert info.value.code == "INPUT" and "field 'amount': required" in info.value.reason
    with pytest.raises(CommandRefused) as info:
        s.do("amend_request", amount=0)
    assert info.value.code == "INPUT"


# --- withdraw_appeal ------------------------------------------------------------------------

@pytest.mark.parametrize("evidence", [False, True])
def test_withdraw_appeal_leaves_the_case_rejected_finally(
    ledger: Ledger, evidence: bool,
) -> None:
    s = Scenario(ledger).to_appealed()
    if evidence:
        s.do("submit_evidence", evidence=["IMG-1"])
    s.do("withdraw_appeal")
    assert s.last("AppealWithdrawn").actor == "user"
    case = s.doc["return"]
    assert (case["status"], case["awaiting"], case["deadline"]) == ("rejected", None, None)
    assert case["arbitration"]["status"] == "withdrawn"
    assert (case["arbitration"]["outcome"], case["arbitration"]["blame"]) == (None, None)
    assert s.doc["next_deadline"] is None
    s.tick(5 * DAY)  # past the evidence deadline: nothing happens
    assert s.doc["violations"] == [] and s.case_status == "rejected"
    refused = s.refused("A-1", "appeal", reason="again")  # one appeal per case
    assert "appealed already" in refused.reason
    s.do("request_return", reason="a new case")  # the withdrawn case no longer blocks


def test_FLOW_withdraw_appeal_only_while_arbitrating(ledger: Ledger) -> None:
    s = Scenario(ledger).to_delivered()
    s.refused("FLOW", "withdraw_appeal")  # no case
    s.do("request_return", reason="size")
    s.do("reject_return", reason="used")
    refused = s.refused("FLOW", "withdraw_appeal")  # nothing appealed
    assert "needs case 1 arbitrating, not rejected" in refused.reason
    s.do("appeal", reason="not used")
    s.do("arbitrate", outcome="merchant", blame="user")
    s.refused("FLOW", "withdraw_appeal")  # ruled
    r = Scenario(ledger, order_id="D2").to_appealed()
    r.refused("FLOW", "withdraw_appeal", 48 * HOUR + SECOND)  # the system ruled first
    assert r.doc["return"]["arbitration"]["status"] == "ruled"


# --- blame unknown, record_blame ------------------------------------------------------------

def test_a_ruling_with_blame_unknown_then_record_blame(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("arbitrate", outcome="user", blame="unknown")
    ruled_at = s.now
    assert s.doc["return"]["arbitration"]["blame"] == "unknown"
    assert s.case_status == "approved"  # A-4 as for any ruling for the user
    s.do("record_blame", DAY, blame="merchant")
    event = s.last("BlameRecorded")
    assert (event.actor, event.case, event.blame,  # type: ignore[attr-defined]
            event.ruled_at) == ("platform", 1, "merchant", ruled_at)  # type: ignore[attr-defined]
    ruling = s.doc["return"]["arbitration"]
    assert (ruling["outcome"], ruling["blame"], ruling["ruled_at"]) == (
        "user", "merchant", ruled_at.isoformat())
    refused = s.refused("FLOW", "record_blame", blame="user")  # given once
    assert "no ruling whose blame is unknown" in refused.reason
    refused = s.refused("FLOW", "record_blame", blame="user", case=1)
    assert "was ruled with blame merchant" in refused.reason


def test_record_blame_goes_to_the_latest_ruling_whose_blame_is_unknown(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_delivered()
    s.do("request_return", amount=3000, reason="a")
    s.do("reject_return", reason="no")
    s.do("appeal", reason="yes")
    s.do("arbitrate", outcome="merchant", blame="unknown")
    s.do("request_return", amount=2000, reason="b")  # case 2, open
    s.do("reject_return", reason="no")
    s.do("appeal", reason="yes")
    s.do("arbitrate", outcome="merchant", blame="creator")  # case 2: blame known
    s.do("record_blame", blame="user")
    assert s.last("BlameRecorded").case == 1  # type: ignore[attr-defined]
    order = ledger.get_order("D1")
    assert order is not None
    assert [c.arbitration.blame for c in order.cases if c.arbitration] == ["user", "creator"]


def test_FLOW_record_blame_needs_a_ruling_whose_blame_is_unknown(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    assert "no ruling whose blame is unknown" in s.refused(
        "FLOW", "record_blame", blame="merchant").reason  # open, not ruled
    assert "was never ruled" in s.refused("FLOW", "record_blame", blame="merchant",
                                          case=1).reason
    assert "has no case 2" in s.refused("FLOW", "record_blame", blame="merchant",
                                        case=2).reason
    s.do("arbitrate", outcome="user", blame="platform")
    s.refused("FLOW", "record_blame", blame="merchant")


def test_the_system_s_ruling_at_the_evidence_deadline_keeps_blame_merchant(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_appealed()
    s.tick(48 * HOUR + SECOND)
    assert s.doc["return"]["arbitration"]["blame"] == "merchant"
    s.refused("FLOW", "record_blame", blame="user")


def test_INPUT_record_blame_takes_a_known_blame(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("arbitrate", outcome="user", blame="unknown")
    for fields in ({"blame": "unknown"}, {"blame": "nobody"}, {}, {"blame": "user", "case": 0}):
        with pytest.raises(CommandRefused) as info:
            s.do("record_blame", **fields)
        assert info.value.code == "INPUT"


# --- reconcile: the case, the tolerance, the order's cancellation -----------------------------

def reconciled(s: Scenario, **fields: object) -> OrderEvent:
    s.do("reconcile", source="douyin", ref=f"m{len(s.events())}", **fields)
    return s.events()[-1]


def test_a_time_within_the_tolerance_agrees_and_beyond_it_is_a_time_discrepancy(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_approved()
    approved = s.now
    for late, tolerance, agrees in ((0, 0, True), (1, 0, False), (600, 600, True),
                                    (-600, 600, True), (601, 600, False)):
        event = reconciled(s, fact="approved", step_at=approved + late * SECOND,
                           tolerance=tolerance)
        assert type(event).__name__ == ("PlatformAgreed" if agrees else "PlatformDiffered")
        assert event.tolerance == tolerance  # type: ignore[attr-defined]
        if not agrees:
            assert event.kind == "time"  # type: ignore[attr-defined]


def test_a_deadline_within_the_tolerance_agrees(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    due = s.now + 48 * HOUR
    assert type(reconciled(s, fact="deadline", deadline=due + 300 * SECOND,
                           tolerance=300)).__name__ == "PlatformAgreed"
    event = reconciled(s, fact="deadline", deadline=due + 301 * SECOND, tolerance=300)
    assert event.kind == "deadline"  # type: ignore[attr-defined]


def test_an_account_lands_on_its_own_case(ledger: Ledger) -> None:
    s = Scenario(ledger).to_refund_after_shipment(amount=3000)
    s.do("approve_return")
    refunded = s.now
    s.do("request_refund", amount=2000, reason="more")  # case 2, open
    event = reconciled(s, fact="refunded", step_at=refunded, amount=3000, case=1)
    assert (type(event).__name__, event.case) == ("PlatformAgreed", 1)  # type: ignore[attr-defined]
    event = reconciled(s, fact="refunded", step_at=refunded, amount=3000)  # the latest
    assert (type(event).__name__, event.case, event.kind) == (  # type: ignore[attr-defined]
        "PlatformDiffered", 2, "outcome")
    assert "has no case 3" in s.refused("FLOW", "reconcile", source="douyin", ref="x",
                                        fact="refunded", case=3).reason


@pytest.mark.parametrize("by,step,kinds", [
    ("platform", 0, []), (None, None, []), ("user", 0, ["actor"]),
    ("platform", 601, ["time"]), ("platform", 600, []), ("user", 3600, ["actor", "time"]),
])
def test_the_order_s_cancellation_is_reconciled_without_a_case(
    ledger: Ledger, by: str | None, step: int | None, kinds: list[str],
) -> None:
    s = Scenario(ledger)
    s.do("pay")
    s.do("cancel", by="platform")  # C-ON-2: no case on the order
    cancelled = s.now
    event = reconciled(s, fact="cancelled", by=by, tolerance=600,
                       step_at=None if step is None else cancelled + step * SECOND)
    assert event.case is None  # type: ignore[attr-defined]
    if not kinds:
        assert type(event).__name__ == "PlatformAgreed"
    else:
        assert event.kinds == kinds  # type: ignore[attr-defined]


def test_a_cancellation_the_ledger_has_not_recorded_is_an_outcome_discrepancy(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_delivered()
    event = reconciled(s, fact="cancelled", by="platform", step_at=s.now)
    assert (event.kind, event.ledger) == ("outcome", "not cancelled")  # type: ignore[attr-defined]
    a = Scenario(ledger, order_id="D2")
    a.tick(25 * HOUR)  # C-ON-4: the system cancelled at placed + 24 h
    event = reconciled(a, fact="cancelled", by="system", step_at=a.now - HOUR)
    assert type(event).__name__ == "PlatformAgreed"


def test_INPUT_reconcile_s_case_and_tolerance(ledger: Ledger) -> None:
    s = Scenario(ledger).to_requested()
    for fields in ({"fact": "cancelled", "case": 1}, {"fact": "approved", "tolerance": -1},
                   {"fact": "approved", "case": 0}, {"fact": "approved", "tolerance": 1.5}):
        with pytest.raises(CommandRefused) as info:
            s.do("reconcile", source="douyin", ref="m", **fields)
        assert info.value.code == "INPUT", fields


def test_an_account_stored_before_the_tolerance_is_read_with_tolerance_0(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_approved()
    event = reconciled(s, fact="approved", step_at=s.now, tolerance=60)
    old = upcast(ledger, event, "tolerance")
    assert old.tolerance == 0 and old.case == 1  # type: ignore[attr-defined]
