"""The platform's part of the Order aggregate: intervention in a dispute (SPEC section 8),
deadline changes (section 9) and the facts of a platform's feed (section 10).  Each rule
ID is decided in one method here or in the aggregate's other parts
(`aftersales.domain.order_core`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aftersales.domain import events as ev
from aftersales.domain import rules
from aftersales.domain.cases import ReturnCase
from aftersales.domain.order_cases import CaseSteps
from aftersales.domain.policy import Policy
from aftersales.domain.reconciliation import ORDER_FACTS, Account, compare, compare_order
from aftersales.domain.states import (
    KNOWN_BLAMES,
    Actor,
    Blame,
    CaseKind,
    CaseStatus,
    Flow,
    Outcome,
    Payment,
)
from aftersales.domain.steps import TIMEOUTS, appeal_closes
from aftersales.errors import CommandRefused

#: A-2: how many evidence references the merchant may submit (checked with the input:
#: `aftersales.application.commands.SubmitEvidence`).
EVIDENCE_REFERENCES = range(1, 5)


class PlatformSteps(CaseSteps):
    """The platform's steps on an order and its cases (a part of `Order`)."""

    # --- platform intervention (SPEC section 8) ----------------------------------------

    def appeal(self, at: datetime, *, reason: str, command_id: str | None,
               policy: Policy) -> None:
        """A-1: the user asks the platform to intervene in the merchant's rejection of the
        latest case, once, within the appeal window of the rejection."""
        self._begin(at, policy)
        case = self._case_for("appeal")
        if case.arbitration is not None:
            raise CommandRefused(
                rules.A_1, f"case {case.number} was appealed already (one appeal per case)")
        self._check_case(case, CaseStatus.REJECTED, "appeal", False)
        if case.flow is Flow.REFUND_BEFORE_SHIPMENT:
            raise CommandRefused(
                rules.A_1, f"case {case.number} was refused by shipping the order (F-1): "
                "that is not a rejection the platform arbitrates")
        assert case.rejected_at is not None
        closes = appeal_closes(case.rejected_at, policy)
        if at > closes:
            raise CommandRefused(
                rules.DEADLINE, f"A-1: the appeal window of case {case.number} closed at "
                f"{closes.isoformat()}")
        if not reason.strip():
            raise CommandRefused(rules.INPUT, "field 'reason': an appeal needs a reason (A-1)")
        self._emit(ev.Appealed, at, Actor.USER, command_id, case=case.number, reason=reason,
                   evidence_deadline=TIMEOUTS[rules.A_2].due(at, policy))

    def _check_arbitrating(self, step: str) -> ReturnCase:
        case = self._case_for(step)
        ruled_by = None if case.arbitration is None else case.arbitration.ruled_by
        self._check_case(case, CaseStatus.ARBITRATING, step, ruled_by == Actor.SYSTEM)
        return case

    def submit_evidence(self, at: datetime, *, evidence: list[str], note: str,
                        command_id: str | None, policy: Policy) -> None:
        """A-2: the merchant's evidence for the dispute, once, by the evidence deadline (the
        command's model takes 1 to 4 references, `EVIDENCE_REFERENCES`)."""
        self._begin(at, policy)
        case = self._check_arbitrating("submit_evidence")
        assert case.arbitration is not None
        if case.arbitration.evidence_at is not None:
            raise CommandRefused(
                rules.A_2, f"the evidence of case {case.number} was submitted already (once)")
        self._emit(ev.EvidenceSubmitted, at, Actor.MERCHANT, command_id, case=case.number,
                   evidence=list(evidence), note=note)

    def arbitrate(self, at: datetime, *, outcome: str, blame: str, note: str,
                  command_id: str | None, policy: Policy) -> None:
        """A-3: the platform rules the dispute, for the user or the merchant, with blame."""
        self._begin(at, policy)
        for field, given, values in (("outcome", outcome, tuple(Outcome)),
                                     ("blame", blame, tuple(Blame))):
            if given not in values:
                raise CommandRefused(rules.INPUT, f"field '{field}': must be one of "
                                     f"{', '.join(values)}")
        case = self._check_arbitrating("arbitrate")
        made = {"at": at, "actor": Actor.PLATFORM.value, "command_id": command_id}
        self._rule(ev.ArbitrationRuled, case, made, Outcome(outcome), Blame(blame), note,
                   policy)

    def withdraw_appeal(self, at: datetime, *, reason: str, command_id: str | None,
                        policy: Policy) -> None:
        """The user withdraws the appeal of the latest case while it is `arbitrating` (not
        ruled): the case is `rejected` again, finally (one appeal per case, A-1)."""
        self._begin(at, policy)
        case = self._case_for("withdraw_appeal")
        self._check_case(case, CaseStatus.ARBITRATING, "withdraw_appeal", False)
        self._emit(ev.AppealWithdrawn, at, Actor.USER, command_id, case=case.number,
                   reason=reason)

    def record_blame(self, at: datetime, *, blame: str, case: int | None,
                     command_id: str | None, policy: Policy) -> None:
        """The platform gives, once, the blame of a ruling recorded with blame `unknown`:
        of case number `case`, or by default of the latest ruled case whose blame is
        unknown."""
        self._begin(at, policy)
        if blame not in KNOWN_BLAMES:
            raise CommandRefused(rules.INPUT, f"field 'blame': must be one of "
                                 f"{', '.join(KNOWN_BLAMES)}")
        if case is None:
            found = next((c for c in reversed(self.cases) if _blame_unknown(c)), None)
            if found is None:
                raise CommandRefused(
                    rules.FLOW, f"record_blame: order {self.order_id} has no ruling whose "
                    "blame is unknown")
        else:
            found = self._numbered(case, "record_blame")
            if not _blame_unknown(found):
                dispute = found.arbitration
                why = ("was never ruled" if dispute is None or dispute.ruled_at is None
                       else f"was ruled with blame {dispute.blame}")
                raise CommandRefused(
                    rules.FLOW, f"record_blame: case {case} {why}; the blame is recorded "
                    "once, for a ruling whose blame is unknown")
        assert found.arbitration is not None and found.arbitration.ruled_at is not None
        self._emit(ev.BlameRecorded, at, Actor.PLATFORM, command_id, case=found.number,
                   blame=blame, ruled_at=found.arbitration.ruled_at)

    def _numbered(self, number: int, step: str) -> ReturnCase:
        """The order's case `number` (FLOW: no such case)."""
        if not 1 <= number <= len(self.cases):
            raise CommandRefused(
                rules.FLOW, f"{step}: order {self.order_id} has no case {number} "
                f"({len(self.cases)} case{'s' if len(self.cases) != 1 else ''})")
        return self.cases[number - 1]

    def _rule(self, event: type[ev.Ruled], case: ReturnCase, made: dict[str, Any],
              outcome: Outcome, blame: Blame, note: str, policy: Policy) -> None:
        """A ruling, and A-4: for the user the case continues as if the merchant had
        agreed at the ruling's time (a rejected request is approved; refused goods count
        as received); for the merchant it is rejected, finally."""
        at = made["at"]
        assert case.arbitration is not None
        resumes, deadline = CaseStatus.REJECTED, None
        if outcome is Outcome.USER:
            goods_refused = case.receipt_rejected_at is not None
            if case.kind is CaseKind.REFUND or (goods_refused and case.flow is Flow.RETURN
                                                and self.payment is Payment.ONLINE):
                resumes = CaseStatus.REFUNDED
            elif not goods_refused:
                resumes, deadline = CaseStatus.APPROVED, TIMEOUTS[rules.R_2].due(at, policy)
            else:
                resumes = CaseStatus.RECEIVED
                deadline = self._receipt_deadlines(case, at, policy)[
                    "reship_deadline" if case.flow is Flow.EXCHANGE else "voucher_deadline"]
        self.trigger_event(event, **{**made, "case": case.number}, outcome=outcome.value,
                           blame=blame.value, note=note,
                           evidence=list(case.arbitration.evidence), resumes=resumes.value,
                           next_deadline=deadline)
        if resumes is CaseStatus.REFUNDED:
            self.trigger_event(ev.PlatformRefunded, at=at, actor=Actor.PLATFORM.value,
                               command_id=None, rule=rules.A_4, deadline=made.get("deadline"),
                               case=case.number, amount=case.amount)

    # --- deadline changes (SPEC section 9) ---------------------------------------------

    def extend_deadline(self, at: datetime, *, command_id: str | None,
                        policy: Policy) -> None:
        """D-1: the merchant extends the receipt deadline of a return or exchange, once,
        while the goods are in transit and the deadline has not passed."""
        self._begin(at, policy)
        case = self._check_in_transit("extend_deadline")
        if case.extended:
            raise CommandRefused(
                rules.D_1, f"the receipt deadline of case {case.number} was extended already "
                "(once per case)")
        due = case.deadline
        assert due is not None and due.rule == rules.R_3
        self._emit(ev.DeadlineExtended, at, Actor.MERCHANT, command_id, case=case.number,
                   deadline_rule=due.rule, old_deadline=due.at,
                   new_deadline=TIMEOUTS[due.rule].extended(due.at, policy))

    def set_deadline(self, at: datetime, *, until: datetime, reason: str,
                     command_id: str | None, policy: Policy) -> None:
        """D-2: the platform moves the pending deadline (of the open case, or the payment
        deadline) to `until`, later than `at`."""
        self._begin(at, policy)
        due = self.pending_deadline
        if due is None:
            raise CommandRefused(
                rules.FLOW, f"set_deadline: order {self.order_id} has no pending deadline")
        if until <= at:
            raise CommandRefused(
                rules.D_2, f"the new deadline {until.isoformat()} is not later than the "
                f"command's time {at.isoformat()}")
        self._emit(ev.DeadlineSet, at, Actor.PLATFORM, command_id, case=due.case,
                   deadline_rule=due.rule, old_deadline=due.at, new_deadline=until,
                   reason=reason)

    # --- platform feeds (SPEC section 10) ----------------------------------------------

    def reconcile(self, at: datetime, *, source: str, ref: str, account: Account,
                  command_id: str | None, policy: Policy, case: int | None = None,
                  tolerance: int = 0) -> None:
        """A platform's account of a step the ledger had already taken, recorded as
        agreeing or, with both versions, as differing: of case number `case` (default:
        the latest case), or of the order itself (the fact `cancelled`).  A time or
        deadline within `tolerance` seconds of the ledger's agrees."""
        self._begin(at, policy)
        if tolerance < 0:
            raise CommandRefused(rules.INPUT, "field 'tolerance': must not be negative")
        number: int | None = None
        if account.fact in ORDER_FACTS:
            if case is not None:
                raise CommandRefused(
                    rules.INPUT, f"field 'case': the fact '{account.fact}' is about the "
                    "order, not a case")
            found = compare_order(self.cancelled_by, self.cancelled_at, account, tolerance)
        else:
            held = self.latest_case if case is None else self._numbered(case, "reconcile")
            if held is None:
                raise CommandRefused(
                    rules.FLOW, f"reconcile: order {self.order_id} has no case to hold the "
                    f"platform's '{account.fact}' against")
            number = held.number
            found = compare(held, account, tolerance)
        common = {"case": number, "source": source, "ref": ref, "fact": account.fact,
                  "step_at": account.step_at, "tolerance": tolerance}
        if not found:
            self._emit(ev.PlatformAgreed, at, Actor.PLATFORM, command_id, **common)
            return
        first = found[0]
        self._emit(ev.PlatformDiffered, at, Actor.PLATFORM, command_id, **common,
                   kind=first.kind, kinds=[d.kind for d in found], ledger=first.ledger,
                   platform=first.platform)

    def _lapse_deadline(self, rule: str) -> str:
        return next(x.deadline.isoformat() for x in self.lapses if x.rule == rule)


def _blame_unknown(case: ReturnCase) -> bool:
    """Whether the case's dispute was ruled with blame `unknown`."""
    dispute = case.arbitration
    return dispute is not None and dispute.ruled_at is not None and (
        dispute.blame == Blame.UNKNOWN)
