"""The read models: plain SQL tables for reporting tools (see docs/reporting.md).

Types a BI tool cannot misread (docs/reporting.md, "Types for BI tools"):
- timestamps are instants stored in UTC: `timestamptz` on PostgreSQL; on SQLite ISO 8601
  text with its offset, always `+00:00` (`2026-03-09T17:33:50.000000+00:00`), in a column
  declared `TIMESTAMP(6)`, so that text order is time order and pandas' `read_sql_table`
  reads aware datetimes; both come back timezone-aware here;
- money is integer fen, in columns named `…_fen`;
- business dates (in the business zone) are `business_day`, or `<what>_business_day` in a
  table with several;
- booleans are `boolean` on PostgreSQL, 0/1 integers on SQLite; statuses are text.

`SCHEMA_VERSION` changes whenever a table or the meaning of a column changes: read models
built by an older version are rebuilt from the events into shadow tables and swapped in
(the upgrade path; `projections.swap`), never mixed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.ext.compiler import compiles

from projections.fold import COUNTERS

SCHEMA_VERSION = 9


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC, returned aware (UTC) on every database.

    On SQLite the column holds ISO 8601 text with the offset `+00:00` and six decimals,
    one width for every value, so that comparing and ordering the text compares and
    orders the instants.  It is declared `TIMESTAMP(6)` (six decimals, as stored), which
    SQLAlchemy's reflection, and so pandas' `read_sql_table`, reads as a timestamp with a
    time zone: pandas gives aware (UTC) datetimes for every such column, one that holds
    only nulls too (a column declared `DATETIME` is aware only from its values, parsed by
    `datetime.fromisoformat`: an all-null one comes back naive).  Pinned by
    tests/unit/test_read_model_types.py and tests/integration/test_read_models_pandas.py.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc if dialect.name == "postgresql" else utc.replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def text(value: Any) -> str | None:
            # ISO 8601 of the UTC time with its offset ("2026-03-01T02:00:00.000000+00:00"),
            # in one step (tests/unit/test_read_model_types.py).
            if value is None:
                return None
            return utc_text(value)

        return text

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@compiles(UTCDateTime, "sqlite")
def _sqlite_instant(type_: UTCDateTime, compiler: Any, **kw: Any) -> str:
    """SQLite's declaration of an instant column (see `UTCDateTime`)."""
    return "TIMESTAMP(6)"


def utc_text(at: datetime) -> str:
    """How SQLite's read models store an instant: '2026-03-01T02:00:00.000000+00:00'."""
    return str(at.astimezone(UTC).isoformat("T", "microseconds"))


TS = UTCDateTime
ID = String(64)
metadata = MetaData()

order_status = Table(
    "order_status", metadata,
    Column("order_id", ID, primary_key=True),
    Column("order_uuid", String(32), nullable=False, unique=True),
    Column("payment", String(8), nullable=False),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("user_id", ID, nullable=False),
    Column("order_status", String(24), nullable=False, index=True),
    Column("goods_amount_fen", BigInteger, nullable=False),
    Column("postage_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("placed_at", TS, nullable=False),
    Column("placed_business_day", Date, nullable=False, index=True),
    Column("delivered_at", TS),
    Column("cancelled_by", String(16)),
    Column("latest_case", Integer),
    Column("case_status", String(24), index=True),
    Column("case_kind", String(16)),
    Column("awaiting", String(16)),
    Column("next_deadline", TS, index=True),
    Column("next_deadline_rule", String(16)),
    Column("next_deadline_original", TS),
    Column("refunded_total_fen", BigInteger, nullable=False),
    Column("violations", Integer, nullable=False),
    Column("lapses", Integer, nullable=False),
    Column("last_event_at", TS, nullable=False),
    Column("last_position", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("history_digest", String(64), nullable=False),
    Column("history_broken", Boolean, nullable=False),
)

return_cases = Table(
    "return_cases", metadata,
    Column("order_id", ID, primary_key=True),
    Column("case_no", Integer, primary_key=True),
    Column("order_uuid", String(32), nullable=False, index=True),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("user_id", ID, nullable=False),
    Column("payment", String(8), nullable=False),
    Column("kind", String(16), nullable=False, index=True),
    Column("case_ref", ID, index=True),
    Column("before_shipment", Boolean, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("amended_at", TS),
    Column("reason", Text, nullable=False),
    Column("status", String(24), nullable=False, index=True),
    Column("requested_at", TS, nullable=False),
    Column("requested_business_day", Date, nullable=False, index=True),
    Column("decided_at", TS),
    Column("decided_business_day", Date),
    Column("decided_by", String(16)),
    Column("decision", String(16)),
    Column("reject_reason", Text),
    Column("response_seconds", BigInteger),
    Column("tracking_at", TS),
    Column("carrier", ID),
    Column("tracking_no", ID),
    Column("received_at", TS),
    Column("received_by", String(16)),
    Column("refunded_at", TS),
    Column("refunded_by", String(16)),
    Column("compensated_at", TS),
    Column("voucher_ref", ID),
    Column("voucher_at", TS),
    Column("receipt_rejected_at", TS),
    Column("replacement_carrier", ID),
    Column("replacement_tracking_no", ID),
    Column("replacement_shipped_at", TS),
    Column("replacement_delivered_at", TS),
    Column("converted_to_refund", Boolean, nullable=False),
    Column("deadline_changes", Integer, nullable=False),
    Column("deadline_changed_by", String(32)),
    Column("deadline_shift_seconds", BigInteger, nullable=False),
    Column("voucher_late", Boolean),
    Column("ended_at", TS),
    Column("paid_to_user_fen", BigInteger, nullable=False),
    Column("merchant_debt_fen", BigInteger, nullable=False),
    Column("rejected_at", TS),
    Column("appealed_at", TS),
    Column("arbitration", String(16)),
    Column("outcome", String(16)),
    Column("blame", String(16)),
    Column("last_position", BigInteger, nullable=False),
    Index("return_cases_merchant_decided", "merchant_id", "decided_business_day"),
)

disputes = Table(
    "disputes", metadata,
    Column("order_id", ID, primary_key=True),
    Column("case_no", Integer, primary_key=True),
    Column("order_uuid", String(32), nullable=False, index=True),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("user_id", ID, nullable=False),
    Column("payment", String(8), nullable=False),
    Column("kind", String(16), nullable=False, index=True),
    Column("rejected", String(8), nullable=False),
    Column("rejected_at", TS, nullable=False),
    Column("reject_reason", Text),
    Column("appeal_reason", Text, nullable=False),
    Column("opened_at", TS, nullable=False, index=True),
    Column("opened_business_day", Date, nullable=False, index=True),
    Column("evidence_deadline", TS, nullable=False),
    Column("evidence_at", TS),
    Column("evidence_count", Integer, nullable=False),
    Column("evidence", Text),
    Column("evidence_note", Text),
    Column("status", String(16), nullable=False, index=True),
    Column("withdrawn_at", TS),
    Column("ruled_at", TS),
    Column("ruled_business_day", Date, index=True),
    Column("ruled_by", String(16)),
    Column("outcome", String(16)),
    Column("blame", String(16)),
    Column("ruling_note", Text),
    Column("lost", Boolean),
    Column("hours_to_ruling", Float),
    Column("resumed_as", String(24)),
    Column("last_position", BigInteger, nullable=False),
)

violations = Table(
    "violations", metadata,
    Column("position", BigInteger, primary_key=True),
    Column("order_id", ID, nullable=False, index=True),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("case_no", Integer, nullable=False),
    Column("kind", String(16), nullable=False, index=True),
    Column("rule", String(32), nullable=False, index=True),
    Column("deadline", TS, nullable=False, index=True),
    Column("business_day", Date, nullable=False, index=True),
    Column("consequence", String(24), nullable=False),
    Column("penalty", Boolean, nullable=False),
)

deadline_changes = Table(
    "deadline_changes", metadata,
    Column("position", BigInteger, primary_key=True),
    Column("order_id", ID, nullable=False, index=True),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("case_no", Integer),
    Column("kind", String(16)),
    Column("change", String(8), nullable=False, index=True),
    Column("changed_by", String(16), nullable=False, index=True),
    Column("deadline_rule", String(16), nullable=False),
    Column("old_deadline", TS, nullable=False),
    Column("new_deadline", TS, nullable=False),
    Column("shift_seconds", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed_at", TS, nullable=False),
    Column("business_day", Date, nullable=False, index=True),
)

discrepancies = Table(
    "discrepancies", metadata,
    Column("position", BigInteger, primary_key=True),
    Column("order_id", ID, nullable=False, index=True),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("case_no", Integer),
    Column("kind", String(16)),
    Column("source", String(32), nullable=False),
    Column("ref", ID, nullable=False),
    Column("fact", String(16), nullable=False),
    Column("discrepancy", String(16), nullable=False, index=True),
    Column("kinds", String(64), nullable=False),
    Column("ledger", Text, nullable=False),
    Column("platform", Text, nullable=False),
    Column("step_at", TS),
    Column("tolerance_seconds", BigInteger, nullable=False),
    Column("reported_at", TS, nullable=False, index=True),
    Column("business_day", Date, nullable=False, index=True),
)

lapses = Table(
    "lapses", metadata,
    Column("position", BigInteger, primary_key=True),
    Column("order_id", ID, nullable=False, index=True),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("user_id", ID, nullable=False, index=True),
    Column("case_no", Integer),
    Column("kind", String(16)),
    Column("rule", String(32), nullable=False, index=True),
    Column("deadline", TS, nullable=False),
    Column("business_day", Date, nullable=False, index=True),
)

def counter_columns() -> list[Column[int]]:
    """The columns of the merchants' daily counters (`fold.COUNTERS`: one per violation
    of the rules table beside the cases, answers and compensations)."""
    return [Column(name, BigInteger if name.endswith("_fen") else Integer,
                   nullable=False) for name in COUNTERS]


merchant_compliance = Table(
    "merchant_compliance", metadata,
    Column("merchant_id", ID, primary_key=True),
    Column("business_day", Date, primary_key=True, index=True),
    *counter_columns(),
    Column("median_response_seconds", Float),
)

#: One row per business day from the first to the last that the ledger's events fall on
#: (none skipped: `projections.calendar`), to LEFT JOIN the daily tables to for charts
#: that show the days without rows as zeros (docs/reporting.md, "The business calendar").
business_calendar = Table(
    "business_calendar", metadata,
    Column("business_day", Date, primary_key=True),
    Column("year", Integer, nullable=False),
    Column("quarter", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("year_month", String(7), nullable=False, index=True),
    Column("month_start_business_day", Date, nullable=False),
    Column("day_of_month", Integer, nullable=False),
    Column("iso_year", Integer, nullable=False),
    Column("iso_week", Integer, nullable=False),
    Column("iso_year_week", String(8), nullable=False, index=True),
    Column("week_start_business_day", Date, nullable=False, index=True),
    Column("iso_weekday", Integer, nullable=False),
    Column("weekday_name", String(9), nullable=False),
    Column("is_weekend", Boolean, nullable=False),
)

pending_deadlines = Table(
    "pending_deadlines", metadata,
    Column("order_id", ID, primary_key=True),
    Column("merchant_id", ID, nullable=False, index=True),
    Column("case_no", Integer),
    Column("rule", String(16), nullable=False, index=True),
    Column("deadline", TS, nullable=False, index=True),
    Column("original_deadline", TS),
    Column("awaiting", String(16)),
)

integrity_breaks = Table(
    "integrity_breaks", metadata,
    Column("order_uuid", String(32), primary_key=True),
    Column("order_id", ID, index=True),
    Column("merchant_id", ID, index=True),
    Column("version", Integer, nullable=False),
    Column("position", BigInteger),
    Column("reason", Text, nullable=False),
)

projection_tracking = Table(
    "projection_tracking", metadata,
    Column("application_name", String(64), primary_key=True),
    Column("notification_id", BigInteger, nullable=False),
)

projection_meta = Table(
    "projection_meta", metadata,
    Column("name", String(64), primary_key=True),
    Column("schema_version", Integer, nullable=False),
    Column("timezone", String(64), nullable=False),
)

#: The tables `rebuild` replays and `verify` compares, with their ordering keys.
READ_MODELS: dict[str, tuple[str, ...]] = {
    "order_status": ("order_id",),
    "return_cases": ("order_id", "case_no"),
    "disputes": ("order_id", "case_no"),
    "violations": ("position",),
    "lapses": ("position",),
    "deadline_changes": ("position",),
    "discrepancies": ("position",),
    "merchant_compliance": ("merchant_id", "business_day"),
    "business_calendar": ("business_day",),
    "pending_deadlines": ("order_id",),
    "integrity_breaks": ("order_uuid",),
}
