"""The read models: plain SQL tables for reporting tools (see docs/reporting.md).

Timestamps are stored as UTC (`timestamptz` on PostgreSQL; ISO text in SQLite) and come
back timezone-aware; money is integer fen; statuses are text.  `SCHEMA_VERSION` changes
whenever a table or the meaning of a column changes: a store built by another version is
rebuilt from the events, never mixed.
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

from projections.fold import COUNTERS

SCHEMA_VERSION = 8


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC, returned aware (UTC) on every database."""

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
            # SQLite's DATETIME text of the UTC time ("2026-03-01 02:00:00.000000"), as
            # SQLAlchemy writes it, in one step (tests/unit/test_read_model_types.py).
            if value is None:
                return None
            return str(value.astimezone(UTC).isoformat(" ", "microseconds")[:26])

        return text

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    Column("goods_amount", BigInteger, nullable=False),
    Column("postage", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("placed_at", TS, nullable=False),
    Column("placed_day", Date, nullable=False, index=True),
    Column("delivered_at", TS),
    Column("cancelled_by", String(16)),
    Column("latest_case", Integer),
    Column("case_status", String(24), index=True),
    Column("case_kind", String(16)),
    Column("awaiting", String(16)),
    Column("next_deadline", TS, index=True),
    Column("next_deadline_rule", String(16)),
    Column("next_deadline_original", TS),
    Column("refunded_total", BigInteger, nullable=False),
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
    Column("amount", BigInteger, nullable=False),
    Column("amended_at", TS),
    Column("reason", Text, nullable=False),
    Column("status", String(24), nullable=False, index=True),
    Column("requested_at", TS, nullable=False),
    Column("requested_day", Date, nullable=False, index=True),
    Column("decided_at", TS),
    Column("decided_day", Date),
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
    Column("paid_to_user", BigInteger, nullable=False),
    Column("merchant_debt", BigInteger, nullable=False),
    Column("rejected_at", TS),
    Column("appealed_at", TS),
    Column("arbitration", String(16)),
    Column("outcome", String(16)),
    Column("blame", String(16)),
    Column("last_position", BigInteger, nullable=False),
    Index("return_cases_merchant_decided", "merchant_id", "decided_day"),
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
    Column("opened_day", Date, nullable=False, index=True),
    Column("evidence_deadline", TS, nullable=False),
    Column("evidence_at", TS),
    Column("evidence_count", Integer, nullable=False),
    Column("evidence", Text),
    Column("evidence_note", Text),
    Column("status", String(16), nullable=False, index=True),
    Column("withdrawn_at", TS),
    Column("ruled_at", TS),
    Column("ruled_day", Date, index=True),
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
    Column("day", Date, nullable=False, index=True),
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
    Column("day", Date, nullable=False, index=True),
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
    Column("day", Date, nullable=False, index=True),
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
    Column("day", Date, nullable=False, index=True),
)

def counter_columns() -> list[Column[int]]:
    """The columns of the merchants' daily counters (`fold.COUNTERS`: one per violation
    of the rules table beside the cases, answers and compensations)."""
    return [Column(name, BigInteger if name == "compensation_fen" else Integer,
                   nullable=False) for name in COUNTERS]


merchant_compliance = Table(
    "merchant_compliance", metadata,
    Column("merchant_id", ID, primary_key=True),
    Column("day", Date, primary_key=True, index=True),
    *counter_columns(),
    Column("median_response_seconds", Float),
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
    "merchant_compliance": ("merchant_id", "day"),
    "pending_deadlines": ("order_id",),
    "integrity_breaks": ("order_uuid",),
}
