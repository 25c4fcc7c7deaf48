"""Questions people ask without a BI tool, answered from the read models (not the events)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select

from aftersales.domain.steps import VIOLATION_COUNTERS
from projections.database import ReadModels
from projections.fold import COUNTERS, DISCREPANCY_COUNTERS, median_seconds
from projections.schema import (
    deadline_changes,
    discrepancies,
    disputes,
    integrity_breaks,
    lapses,
    merchant_compliance,
    order_status,
    return_cases,
    violations,
)

#: The scorecard's columns: the merchants' counters (the discrepancies by class among
#: them), their violations, their lost disputes per 1,000 orders placed, the median answer
#: in hours.
SCORECARD = ("merchant_id", *COUNTERS, "violations", "dispute_loss_per_1000_orders",
             "median_response_hours")
#: The scorecard's discrepancies by class (`outcome`, `actor`, `amount`, `deadline`,
#: `time`): each differing account once, under its most serious way; they add up to
#: `discrepancies`.
DISCREPANCY_CLASSES = tuple(DISCREPANCY_COUNTERS.values())
#: The columns `aftersales lapses` prints.
LAPSE_COLUMNS = ("deadline", "rule", "merchant_id", "user_id", "order_id", "case_no",
                 "kind")
#: The columns `aftersales discrepancies` prints.
DISCREPANCY_COLUMNS = ("reported_at", "discrepancy", "merchant_id", "order_id", "case_no",
                       "fact", "ledger", "platform", "source", "ref")
#: The columns `aftersales disputes` prints.
DISPUTE_COLUMNS = ("order_id", "merchant_id", "case_no", "kind", "rejected", "opened_at",
                   "evidence_deadline", "evidence_at", "evidence_count", "status",
                   "ruled_at", "ruled_by", "outcome", "blame", "lost", "hours_to_ruling")
#: The demo's narrower scorecard (within 100 columns of a terminal).
DEMO_SCORECARD = ("merchant_id", "cases_opened", "violations", "compensation_fen",
                  "disputes_lost", "median_response_hours")
#: The merchant_id of the scorecard's totals row (no merchant's id can be: ids have no
#: parentheses).
TOTAL = "(total)"


def _listed(views: ReadModels, q: Select[Any], when: ColumnElement[datetime],
            since: datetime | None, until: datetime | None,
            equal: Sequence[tuple[ColumnElement[Any], object]]) -> list[dict[str, Any]]:
    """The rows of `q` whose `when` is in [since, until) and whose columns equal the
    values given (None: any), as dicts: the one shape of every listing command."""
    for column, wanted in equal:
        if wanted is not None:
            q = q.where(column == wanted)
    if since:
        q = q.where(when >= since)
    if until:
        q = q.where(when < until)
    with views.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def list_violations(views: ReadModels, merchant: str | None = None, rule: str | None = None,
                    since: datetime | None = None,
                    until: datetime | None = None) -> list[dict[str, Any]]:
    """Violations whose deadline is in [since, until), oldest first."""
    v = violations.c
    q = select(v.order_id, v.merchant_id, v.case_no, v.rule, v.deadline, v.consequence,
               v.penalty).order_by(v.deadline, v.position)
    return _listed(views, q, v.deadline, since, until,
                   ((v.merchant_id, merchant or None), (v.rule, rule or None)))


def list_lapses(views: ReadModels, merchant: str | None = None, rule: str | None = None,
                since: datetime | None = None, until: datetime | None = None,
                user: str | None = None) -> list[dict[str, Any]]:
    """The users' lapses whose deadline is in [since, until), oldest first."""
    x = lapses.c
    return _listed(views, select(lapses).order_by(x.deadline, x.position), x.deadline,
                   since, until, ((x.merchant_id, merchant), (x.rule, rule),
                                  (x.user_id, user)))


def list_discrepancies(views: ReadModels, merchant: str | None = None,
                       kind: str | None = None, since: datetime | None = None,
                       until: datetime | None = None) -> list[dict[str, Any]]:
    """The platform's accounts that differ from the ledger, reported in [since, until),
    oldest first."""
    d = discrepancies.c
    return _listed(views, select(discrepancies).order_by(d.reported_at, d.position),
                   d.reported_at, since, until,
                   ((d.merchant_id, merchant), (d.discrepancy, kind)))


def list_disputes(views: ReadModels, merchant: str | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  status: str | None = None, outcome: str | None = None,
                  blame: str | None = None, lost: bool | None = None) -> list[dict[str, Any]]:
    """Disputes (appeals) opened in [since, until), oldest first."""
    d = disputes.c
    q = select(disputes).order_by(d.opened_at, d.order_id, d.case_no)
    return _listed(views, q, d.opened_at, since, until,
                   ((d.merchant_id, merchant), (d.status, status), (d.outcome, outcome),
                    (d.blame, blame), (d.lost, lost)))


def currencies(views: ReadModels) -> list[str]:
    """The currencies the orders are in (the money columns sum fen of these)."""
    o = order_status.c
    with views.engine.connect() as conn:
        return [str(c) for c, in conn.execute(select(o.currency).distinct()
                                              .order_by(o.currency))]


def broken_orders(views: ReadModels) -> list[dict[str, Any]]:
    """The orders the read models could not vouch for (their history breaks), by order."""
    b = integrity_breaks.c
    with views.engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            select(integrity_breaks).order_by(b.order_id, b.order_uuid)).mappings()]


def business_days(tz: tzinfo, since: datetime | None,
                  until: datetime | None) -> tuple[date | None, date | None]:
    """The business days (in zone `tz`) a range touches, as [first, end): `report` counts
    whole days."""
    first = since.astimezone(tz).date() if since else None
    end = None
    if until is not None:
        local = until.astimezone(tz)
        end = local.date() if local.time() == time(0) else local.date() + timedelta(days=1)
    return first, end


def _on_days(views: ReadModels, q: Select[Any], day: ColumnElement[date],
             since: datetime | None, until: datetime | None) -> Select[Any]:
    """`q` over the business days [since, until) touches, by the date column `day`."""
    first, end = business_days(views.tz, since, until)
    if first:
        q = q.where(day >= first)
    if end:
        q = q.where(day < end)
    return q


def recorded_days(views: ReadModels, since: datetime | None = None,
                  until: datetime | None = None) -> tuple[date | None, date | None]:
    """The first and the last business day the scorecard over [since, until) counts
    anything on (None, None: nothing recorded there): the days the scorecard page states."""
    m = merchant_compliance.c
    q = _on_days(views, select(func.min(m.business_day), func.max(m.business_day)),
                 m.business_day, since, until)
    with views.engine.connect() as conn:
        first, last = conn.execute(q).one()
    return first, last


def scorecard(views: ReadModels, since: datetime | None = None,
              until: datetime | None = None) -> list[dict[str, Any]]:
    """Per merchant over every business day that [since, until) touches: the counts of
    merchant_compliance, and the median response time (hours) of the cases decided on
    those days.  Worst first (most violations)."""
    return scorecard_with_total(views, since, until)[0]


def scorecard_with_total(views: ReadModels, since: datetime | None = None,
                         until: datetime | None = None
                         ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The scorecard and its totals row (merchant_id `TOTAL`: every counter summed, the
    loss rate over all orders, the median over all cases decided)."""
    m = merchant_compliance.c
    sums = [func.sum(m[c]).label(c) for c in COUNTERS]
    q = select(m.merchant_id, *sums).group_by(m.merchant_id)
    r = return_cases.c
    q = _on_days(views, q, m.business_day, since, until)
    times = _on_days(views, select(r.merchant_id, r.response_seconds)
                     .where(r.response_seconds.is_not(None)), r.decided_business_day, since,
                     until)
    with views.engine.connect() as conn:
        # Integers on every database (PostgreSQL's SUM of a bigint is a numeric).
        rows: list[dict[str, Any]] = [
            {k: v if k == "merchant_id" else int(v or 0) for k, v in x.items()}
            for x in conn.execute(q).mappings()]
        by_merchant: dict[str, list[int]] = {}
        for merchant, seconds in conn.execute(times):
            by_merchant.setdefault(merchant, []).append(seconds)
    total: dict[str, Any] = {"merchant_id": TOTAL,
                             **{c: sum(row[c] for row in rows) for c in COUNTERS}}
    for row, found in [*((row, by_merchant.get(row["merchant_id"], [])) for row in rows),
                       (total, [s for times_ in by_merchant.values() for s in times_])]:
        row["violations"] = sum(row[counter] for counter in VIOLATION_COUNTERS)
        row["dispute_loss_per_1000_orders"] = loss_rate(row["disputes_lost"],
                                                        row["orders_placed"])
        row["median_response_hours"] = hours(median_seconds(found))
    rows.sort(key=lambda x: (-x["violations"], x["merchant_id"]))
    return rows, total


def scorecard_table(total: dict[str, Any]) -> tuple[str, ...]:
    """The scorecard's columns in `report`'s table for a person: every column, but the
    discrepancies by class only when a platform feed reported a differing account in the
    window (`total`: the totals row).  Without one they would be five columns of zeros, a
    hundred characters wider, on every store that has no feed; JSON, CSV and the page
    always have them."""
    if total.get("discrepancies"):
        return SCORECARD
    return tuple(c for c in SCORECARD if c not in DISCREPANCY_CLASSES)


def hours(seconds: float | None) -> float | None:
    """Seconds as hours to two decimals, halves up (None stays None)."""
    if seconds is None:
        return None
    return float((Decimal(seconds) / 3600).quantize(Decimal("0.01"), ROUND_HALF_UP))


def loss_rate(lost: int, orders: int) -> float | None:
    """Lost disputes per 1,000 orders placed (None: no order placed in the window)."""
    if not orders:
        return None
    # Halves round up, as SQL's ROUND does (Python's round would go to even).
    return float((Decimal(1000 * lost) / orders).quantize(Decimal("0.01"), ROUND_HALF_UP))


def disputes_by_merchant(views: ReadModels) -> list[dict[str, Any]]:
    """Per merchant: disputes opened, still open, lost, won, ruled with the blame not yet
    known (apart: neither lost nor won), withdrawn by the user, evidence missed, and the
    median hours from appeal to ruling (the demo's summary)."""
    d = disputes.c
    q = (select(d.merchant_id, func.count().label("disputes"),
                func.sum(case((d.status == "open", 1), else_=0)).label("open"),
                func.sum(case((d.lost, 1), else_=0)).label("lost"),
                func.sum(case(((d.outcome == "merchant") & ~d.lost, 1), else_=0)).label(
                    "won"),
                func.sum(case((d.blame == "unknown", 1), else_=0)).label("unknown_blame"),
                func.sum(case((d.status == "withdrawn", 1), else_=0)).label("withdrawn"),
                func.sum(case((d.ruled_by == "system", 1), else_=0)).label(
                    "evidence_missed"))
         .group_by(d.merchant_id).order_by(d.merchant_id))
    hours = select(d.merchant_id, d.hours_to_ruling).where(d.hours_to_ruling.is_not(None))
    with views.engine.connect() as conn:
        found: list[dict[str, Any]] = [
            {k: v if k == "merchant_id" else int(v or 0) for k, v in x.items()}
            for x in conn.execute(q).mappings()]
        by_merchant: dict[str, list[float]] = {}
        for merchant, h in conn.execute(hours):
            by_merchant.setdefault(merchant, []).append(h)
    for row in found:
        times = by_merchant.get(row["merchant_id"])
        row["median_hours_to_ruling"] = statistics.median(times) if times else None
    found.sort(key=lambda x: (-x["lost"], x["merchant_id"]))
    return found


def cases_by_kind(views: ReadModels) -> list[dict[str, Any]]:
    """How many cases of each kind there are, how many ended refunded, exchanged, or
    turned from an exchange into a refund, and how many had their deadline moved."""
    r = return_cases.c
    q = (select(r.kind, func.count().label("cases"),
                func.sum(case((r.status == "refunded", 1), else_=0)).label("refunded"),
                func.sum(case((r.status == "exchanged", 1), else_=0)).label("exchanged"),
                func.sum(case((r.converted_to_refund, 1), else_=0)).label(
                    "converted_to_refund"),
                func.sum(case((r.deadline_changes > 0, 1), else_=0)).label("deadline_moved"))
         .group_by(r.kind).order_by(r.kind))
    with views.engine.connect() as conn:
        return [dict(x) for x in conn.execute(q).mappings()]


def deadline_changes_by_actor(views: ReadModels) -> list[dict[str, Any]]:
    """The deadline changes (SPEC section 9) by rule and by who made them."""
    d = deadline_changes.c
    q = (select(d.change, d.changed_by, func.count().label("changes"),
                func.sum(d.shift_seconds).label("shift_seconds"))
         .group_by(d.change, d.changed_by).order_by(d.change, d.changed_by))
    with views.engine.connect() as conn:
        return [dict(x) for x in conn.execute(q).mappings()]


def per_day(views: ReadModels, table: str, since: datetime | None = None,
            until: datetime | None = None) -> list[dict[str, Any]]:
    """How many `violations` or `lapses` there are per business day (of their deadline) and
    rule, over the business days [since, until) touches; by day, then rule."""
    t = {"violations": violations, "lapses": lapses}[table].c
    q = _on_days(views, select(t.business_day, t.rule, func.count().label("count"))
                 .group_by(t.business_day, t.rule).order_by(t.business_day, t.rule),
                 t.business_day, since, until)
    with views.engine.connect() as conn:
        return [dict(x) for x in conn.execute(q).mappings()]


def compensation_per_month(views: ReadModels, since: datetime | None = None,
                           until: datetime | None = None) -> list[dict[str, Any]]:
    """The platform's advance compensations per business month (YYYY-MM): how many, and
    how much in fen; over the business days [since, until) touches, by month."""
    m = merchant_compliance.c
    q = _on_days(views, select(m.business_day, func.sum(m.compensations_paid).label("paid"),
                               func.sum(m.compensation_fen).label("fen"))
                 .where(m.compensations_paid > 0).group_by(m.business_day)
                 .order_by(m.business_day), m.business_day, since, until)
    months: dict[str, dict[str, Any]] = {}
    with views.engine.connect() as conn:
        for day, paid, fen in conn.execute(q):
            month = months.setdefault(f"{day:%Y-%m}", {"month": f"{day:%Y-%m}",
                                                       "compensations_paid": 0,
                                                       "compensation_fen": 0})
            month["compensations_paid"] += int(paid)
            month["compensation_fen"] += int(fen)
    return list(months.values())
