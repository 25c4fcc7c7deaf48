"""SPEC section 8: platform intervention (A-1 ... A-4): the appeal and its window, the
merchant's evidence and its deadline, the platform's ruling with blame, and how a ruling
for the user continues each kind of case (both payment methods where both apply)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aftersales import Ledger, status_document
from tests.scenario import DAY, GOODS, HOUR, SECOND, Scenario

BOTH = pytest.mark.parametrize("payment", ["online", "cod"])


def dispute(s: Scenario) -> dict[str, object]:
    found = s.doc["return"]["arbitration"]
    assert isinstance(found, dict)
    return found


def rejected_request(s: Scenario, kind: str) -> Scenario:
    """A case of `kind` whose request the merchant rejected."""
    if kind == "refund":
        s.to_refund_after_shipment()
    else:
        s.to_delivered().do(f"request_{kind}", DAY, reason="size")
    s.do("reject_return", reason="not our fault")
    return s


def refused_goods(s: Scenario, kind: str) -> Scenario:
    """A return or exchange whose returned goods the merchant refused (R-6)."""
    s.to_delivered().do(f"request_{kind}", DAY, reason="size")
    s.do("approve_return")
    s.do("submit_tracking", carrier="YTO", tracking_no="YT1")
    s.do("reject_receipt", DAY, reason="damaged")
    return s


def rejected(s: Scenario, rejection: str, kind: str) -> Scenario:
    """A case of `kind` whose request (`rejection` "request") or goods ("goods") the
    merchant rejected."""
    return rejected_request(s, kind) if rejection == "request" else refused_goods(s, kind)


# --- the appeal ------------------------------------------------------------------------

def test_A_1_the_user_appeals_a_rejection_and_the_merchant_owes_evidence(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_rejected()
    s.do("appeal", DAY, reason="it was not used")
    ret = s.doc["return"]
    assert (ret["status"], ret["awaiting"]) == ("arbitrating", "merchant")
    assert ret["deadline"] == (s.now + 48 * HOUR).isoformat()
    assert s.doc["next_deadline"]["rule"] == "A-2"
    assert dispute(s) == {
        "status": "open", "outcome": None, "blame": None,
        "evidence_deadline": (s.now + 48 * HOUR).isoformat(), "opened_at": s.now.isoformat(),
        "evidence": [], "evidence_at": None, "ruled_at": None, "ruled_by": None}
    assert s.last("Appealed").actor == "user"


@pytest.mark.parametrize("rejection", ["request", "goods"])
def test_A_1_an_appeal_exactly_at_the_window_s_end_is_accepted(
    ledger: Ledger, rejection: str,
) -> None:
    s = rejected(Scenario(ledger), rejection, "return")
    s.do("appeal", 7 * DAY, reason="please look")
    assert s.case_status == "arbitrating"


@pytest.mark.parametrize("rejection", ["request", "goods"])
def test_A_1_an_appeal_one_second_after_the_window_is_DEADLINE(
    ledger: Ledger, rejection: str,
) -> None:
    s = rejected(Scenario(ledger), rejection, "exchange")
    refused = s.refused("DEADLINE", "appeal", 7 * DAY + SECOND, reason="please look")
    assert "A-1" in str(refused)
    assert s.case_status == "rejected"


def test_A_1_one_appeal_per_case(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.refused("A-1", "appeal", reason="again")  # while it is arbitrating
    s.do("arbitrate", outcome="merchant", blame="user", note="the photos show use")
    assert (s.case_status, dispute(s)["status"]) == ("rejected", "ruled")
    s.refused("A-1", "appeal", reason="again")  # after the ruling: final


def test_A_1_a_second_rejection_of_an_appealed_case_is_final(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("arbitrate", outcome="user", blame="merchant")  # approved at the ruling
    s.do("submit_tracking", carrier="YTO", tracking_no="YT1")
    s.do("reject_receipt", reason="damaged")
    s.refused("A-1", "appeal", reason="again")
    assert (s.case_status, s.doc["refunded_total"]) == ("rejected", 0)


def test_A_1_only_a_rejected_case_is_appealed(ledger: Ledger) -> None:
    s = Scenario(ledger)
    s.refused("FLOW", "appeal", reason="no case")
    s.to_requested()
    s.refused("FLOW", "appeal", reason="not rejected")
    s.do("approve_return")
    s.refused("FLOW", "appeal", reason="approved")


def test_A_1_a_refund_refused_by_shipping_is_not_appealed(ledger: Ledger) -> None:
    s = Scenario(ledger).to_refund_before_shipment()
    s.do("ship", carrier="SF", tracking_no="SF1")
    assert s.case_status == "rejected"
    refused = s.refused("A-1", "appeal", reason="I asked first")
    assert "F-1" in str(refused)


def test_A_1_an_appeal_needs_a_reason(ledger: Ledger) -> None:
    s = Scenario(ledger).to_rejected()
    s.refused("INPUT", "appeal", reason=" ")
    s.refused("INPUT", "appeal")


def test_A_1_an_unappealed_rejection_stays_final_and_nothing_is_recorded(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_rejected()
    before = s.event_names()
    assert s.tick(30 * DAY) == 0
    assert s.event_names() == before and s.case_status == "rejected"
    assert s.doc["next_deadline"] is None and s.doc["violations"] == []


def test_A_1_no_new_case_while_arbitrating_and_a_later_case_is_not_appealed(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_appealed()
    s.refused("R-OPEN", "request_return", reason="again")
    s.do("arbitrate", outcome="merchant", blame="both")
    s.do("request_return", reason="another try")  # the dispute ended: a new case opens
    s.do("reject_return", reason="still used")
    s.do("appeal", reason="the second case")  # one appeal per case, and this is case 2
    assert s.doc["return"]["case"] == 2 and s.case_status == "arbitrating"


# --- the merchant's evidence ---------------------------------------------------------

def test_A_2_evidence_exactly_at_the_deadline_is_on_time(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("submit_evidence", 48 * HOUR, evidence=["IMG-1", "IMG-2"], note="see the tag")
    ret = s.doc["return"]
    assert (ret["status"], ret["awaiting"], ret["deadline"]) == ("arbitrating", "platform",
                                                                  None)
    assert dispute(s)["evidence"] == ["IMG-1", "IMG-2"]
    assert dispute(s)["evidence_at"] == s.now.isoformat()
    assert s.doc["violations"] == [] and s.doc["next_deadline"] is None
    assert s.tick(30 * DAY) == 0  # the platform rules when it rules: no deadline


def test_A_2_evidence_is_submitted_once(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("submit_evidence", evidence=["IMG-1"])
    s.refused("A-2", "submit_evidence", evidence=["IMG-2"])


@pytest.mark.parametrize("count", [0, 5])
def test_A_2_evidence_is_one_to_four_references(ledger: Ledger, count: int) -> None:
    """Checked with the input: the line is no command, and reveals no timeout."""
    s = Scenario(ledger).to_appealed()
    before = s.event_names()
    refused = s.refused("INPUT", "submit_evidence", 48 * HOUR + SECOND,
                        evidence=[f"IMG-{k}" for k in range(count)])
    assert "field 'evidence'" in str(refused) and "A-2" in str(refused)
    assert s.event_names() == before and s.case_status == "arbitrating"
    s.now -= 48 * HOUR + SECOND
    s.do("submit_evidence", evidence=["IMG-1", "IMG-2", "IMG-3", "IMG-4"])


def test_A_2_no_evidence_in_48h_the_system_rules_for_the_user_with_a_violation(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_appealed()
    opened = s.now
    refused = s.refused("DEADLINE", "submit_evidence", 48 * HOUR + SECOND,
                        evidence=["IMG-1"])
    assert "A-2" in str(refused)
    ruled = s.last("ArbitrationAutoRuled")
    assert (ruled.actor, ruled.at, ruled.outcome, ruled.blame) == (  # type: ignore[attr-defined]
        "system", opened + 48 * HOUR, "user", "merchant")
    assert ruled.rule == "A-2"  # type: ignore[attr-defined]
    assert s.doc["violations"] == [{
        "rule": "ARBITRATION_EVIDENCE_48H", "case": 1,
        "deadline": (opened + 48 * HOUR).isoformat(), "consequence": "ruled_for_user",
        "penalty": False}]
    assert dispute(s)["ruled_by"] == "system"
    s.refused("DEADLINE", "arbitrate", outcome="merchant", blame="user")


def test_A_2_the_sweep_rules_at_exactly_the_deadline(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    opened = s.now
    assert s.tick(48 * HOUR) == 0  # not yet due at the deadline itself
    assert s.tick(SECOND) == 1
    assert s.last("ArbitrationAutoRuled").at == opened + 48 * HOUR
    assert s.case_status == "approved"


def test_A_2_the_platform_may_move_the_evidence_deadline(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    until = s.now + 5 * DAY
    s.do("set_deadline", until=until, reason="holiday")
    assert dispute(s)["evidence_deadline"] == until.isoformat()
    s.tick(4 * DAY)
    assert s.case_status == "arbitrating"
    s.tick(2 * DAY)
    assert s.last("ArbitrationAutoRuled").at == until


# --- the ruling ----------------------------------------------------------------------

def test_A_3_the_ruling_is_in_the_audit_trail_with_outcome_blame_and_evidence(
    ledger: Ledger,
) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("submit_evidence", evidence=["IMG-7"], note="worn")
    s.do("arbitrate", DAY, outcome="user", blame="merchant", note="sold used goods")
    ruled = s.last("ArbitrationRuled")
    assert ruled.actor == "platform"
    assert (ruled.outcome, ruled.blame, ruled.note, ruled.evidence) == (  # type: ignore[attr-defined]
        "user", "merchant", "sold used goods", ["IMG-7"])
    assert {k: dispute(s)[k] for k in ("status", "outcome", "blame", "ruled_by")} == {
        "status": "ruled", "outcome": "user", "blame": "merchant", "ruled_by": "platform"}


def test_A_3_the_platform_may_rule_before_the_evidence(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("arbitrate", outcome="user", blame="platform", note="our courier lost it")
    assert s.case_status == "approved"
    s.refused("FLOW", "submit_evidence", evidence=["IMG-1"])
    s.tick(3 * DAY)  # past the evidence deadline: the ruling ended it, no violation
    assert s.doc["violations"] == [] and s.case_status == "approved"


def test_A_3_only_an_arbitrating_case_is_ruled(ledger: Ledger) -> None:
    s = Scenario(ledger)
    s.refused("FLOW", "arbitrate", outcome="user", blame="merchant")
    s.to_rejected()
    s.refused("FLOW", "arbitrate", outcome="user", blame="merchant")


@pytest.mark.parametrize("field,value", [("outcome", "both"), ("blame", "courier")])
def test_A_3_outcome_and_blame_take_the_listed_values(ledger: Ledger, field: str,
                                                       value: str) -> None:
    s = Scenario(ledger).to_appealed()
    fields = {"outcome": "user", "blame": "merchant", field: value}
    assert f"field '{field}'" in str(s.refused("INPUT", "arbitrate", **fields))


@pytest.mark.parametrize("blame", ["merchant", "user", "both", "platform", "creator",
                                   "unknown"])
def test_A_3_every_blame_is_recorded(ledger: Ledger, blame: str) -> None:
    s = Scenario(ledger).to_appealed()
    s.do("arbitrate", outcome="merchant", blame=blame)
    assert dispute(s)["blame"] == blame


# --- how a ruling for the user continues the case --------------------------------------

@BOTH
@pytest.mark.parametrize("kind", ["return", "exchange"])
def test_A_4_a_rejected_request_ruled_for_the_user_is_approved_from_the_ruling(
    ledger: Ledger, payment: str, kind: str,
) -> None:
    s = rejected_request(Scenario(ledger, payment), kind)
    s.do("appeal", reason="please")
    s.do("arbitrate", DAY, outcome="user", blame="merchant")
    assert (s.case_status, s.doc["return"]["awaiting"]) == ("approved", "user")
    assert s.doc["next_deadline"] == {"rule": "R-2", "case": 1,
                                      "deadline": (s.now + 7 * DAY).isoformat()}
    s.do("submit_tracking", 7 * DAY, carrier="YTO", tracking_no="YT1")  # on time
    s.do("confirm_receipt")
    assert s.case_status == ("refunded" if kind == "return" and payment == "online"
                             else "received")


def test_A_4_a_rejected_refund_ruled_for_the_user_is_refunded_at_once(
    ledger: Ledger,
) -> None:
    s = rejected_request(Scenario(ledger, "online"), "refund")
    s.do("appeal", reason="it never came")
    s.do("arbitrate", outcome="user", blame="merchant")
    assert s.event_names()[-2:] == ["ArbitrationRuled", "PlatformRefunded"]
    refund = s.last("PlatformRefunded")
    assert (refund.rule, refund.deadline, refund.actor) == (  # type: ignore[attr-defined]
        "A-4", None, "platform")
    assert (s.case_status, s.order_status) == ("refunded", "shipped")
    assert s.doc["refunded_total"] == GOODS and s.doc["return"]["awaiting"] is None


def test_A_4_online_refused_goods_ruled_for_the_user_are_received_and_refunded(
    ledger: Ledger,
) -> None:
    s = refused_goods(Scenario(ledger, "online"), "return")
    s.do("appeal", reason="they were fine")
    s.do("arbitrate", outcome="user", blame="both")
    assert s.last("PlatformRefunded").rule == "A-4"  # type: ignore[attr-defined]
    assert s.case_status == "refunded" and s.doc["refunded_total"] == GOODS
    order = ledger.get_order(s.order_id)
    assert order is not None and order.cases[0].received_at == s.now


def test_A_4_cod_refused_goods_ruled_for_the_user_run_the_voucher_deadline_from_the_ruling(
    ledger: Ledger,
) -> None:
    s = refused_goods(Scenario(ledger, "cod"), "return")
    s.do("appeal", reason="they were fine")
    s.do("arbitrate", DAY, outcome="user", blame="merchant")
    ruled = s.now
    assert (s.case_status, s.doc["return"]["awaiting"]) == ("received", "merchant")
    assert s.doc["next_deadline"] == {"rule": "R-COD-4", "case": 1,
                                      "deadline": (ruled + 48 * HOUR).isoformat()}
    s.tick(48 * HOUR + SECOND)  # no voucher: compensated, as for any cod return
    assert s.case_status == "compensated"
    assert [v["rule"] for v in s.doc["violations"]] == ["COD_REFUND_VOUCHER_48H"]


@BOTH
def test_A_4_exchange_refused_goods_ruled_for_the_user_run_the_reship_deadline(
    ledger: Ledger, payment: str,
) -> None:
    s = refused_goods(Scenario(ledger, payment), "exchange")
    s.do("appeal", reason="they were fine")
    s.do("arbitrate", outcome="user", blame="merchant")
    assert s.doc["next_deadline"] == {"rule": "E-2", "case": 1,
                                      "deadline": (s.now + 48 * HOUR).isoformat()}
    s.do("ship_replacement", 48 * HOUR, carrier="SF", tracking_no="SF9")
    s.do("deliver_replacement")
    assert s.case_status == "exchanged" and s.doc["refunded_total"] == 0


Reach = Callable[[Scenario], Scenario]
CASES: dict[str, tuple[str, Reach]] = {
    "return request online": ("online", lambda s: rejected_request(s, "return")),
    "return request cod": ("cod", lambda s: rejected_request(s, "return")),
    "exchange request online": ("online", lambda s: rejected_request(s, "exchange")),
    "exchange request cod": ("cod", lambda s: rejected_request(s, "exchange")),
    "refund request online": ("online", lambda s: rejected_request(s, "refund")),
    "return goods online": ("online", lambda s: refused_goods(s, "return")),
    "return goods cod": ("cod", lambda s: refused_goods(s, "return")),
    "exchange goods online": ("online", lambda s: refused_goods(s, "exchange")),
    "exchange goods cod": ("cod", lambda s: refused_goods(s, "exchange")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_A_4_a_ruling_for_the_merchant_rejects_the_case_finally(ledger: Ledger,
                                                                case: str) -> None:
    payment, reach = CASES[case]
    s = reach(Scenario(ledger, payment))
    s.do("appeal", reason="please")
    s.do("submit_evidence", evidence=["IMG-1"])
    s.do("arbitrate", outcome="merchant", blame="user")
    assert (s.case_status, s.doc["return"]["awaiting"], s.doc["next_deadline"]) == (
        "rejected", None, None)
    assert s.doc["refunded_total"] == 0
    s.refused("A-1", "appeal", reason="again")
    assert s.tick(30 * DAY) == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_A_4_the_system_s_ruling_continues_the_case_as_the_platform_s_would(
    ledger: Ledger, case: str,
) -> None:
    """A-2's automatic ruling (for the user) resumes each kind where a platform ruling for
    the user would, at the evidence deadline; a refund it causes names A-4 and the
    deadline that passed."""
    payment, reach = CASES[case]
    s = reach(Scenario(ledger, payment))
    s.do("appeal", reason="please")
    deadline = s.now + 48 * HOUR
    s.tick(48 * HOUR + SECOND)
    expected = {"return request online": "approved", "return request cod": "approved",
                "exchange request online": "approved", "exchange request cod": "approved",
                "refund request online": "refunded", "return goods online": "refunded",
                "return goods cod": "received", "exchange goods online": "received",
                "exchange goods cod": "received"}[case]
    assert s.case_status == expected
    ruled = s.last("ArbitrationAutoRuled")
    assert ruled.resumes == expected and ruled.at == deadline  # type: ignore[attr-defined]
    if expected == "refunded":
        refund = s.last("PlatformRefunded")
        assert (refund.rule, refund.deadline) == ("A-4", deadline)  # type: ignore[attr-defined]
    else:
        assert s.doc["next_deadline"]["deadline"] > deadline.isoformat()


def test_A_4_cascade_a_ruling_then_a_sweep_past_the_next_deadline(ledger: Ledger) -> None:
    """One sweep far past the evidence deadline applies the ruling, then R-2's closing of
    the approved case nobody sent back (a lapse), in order."""
    s = Scenario(ledger).to_appealed()
    s.tick(30 * DAY)
    assert s.event_names()[-2:] == ["ArbitrationAutoRuled", "ReturnAutoClosed"]
    assert s.case_status == "closed"
    assert [x["rule"] for x in s.doc["lapses"]] == ["RETURN_TRACKING_7D"]


def test_ARBITRATION_EVIDENCE_48H_one_violation_per_missed_evidence(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    s.tick(3 * DAY)
    s.tick(3 * DAY)
    assert [v["rule"] for v in s.doc["violations"]] == ["ARBITRATION_EVIDENCE_48H"]


def test_as_of_during_the_dispute_shows_it_open(ledger: Ledger) -> None:
    s = Scenario(ledger).to_appealed()
    during = s.now + HOUR
    s.do("submit_evidence", 2 * HOUR, evidence=["IMG-1"])
    s.do("arbitrate", DAY, outcome="merchant", blame="user")
    then = ledger.order_as_of(s.order_id, during)
    assert then is not None
    doc = status_document(then)
    assert doc["return"]["status"] == "arbitrating"
    assert doc["return"]["arbitration"]["status"] == "open"
    assert doc["return"]["awaiting"] == "merchant"
    assert dispute(s)["status"] == "ruled"
