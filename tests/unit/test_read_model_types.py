"""The read models' timestamps are stored as SQLAlchemy's own SQLite DATETIME text of the
UTC time (what reports compare and sort), however they are written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from projections.schema import UTCDateTime

DIALECT = sqlite.dialect()
SQLALCHEMY_TEXT = DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
OURS = UTCDateTime().dialect_impl(DIALECT).bind_processor(DIALECT)
zones = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-9))])


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=zones))
def test_a_timestamp_is_stored_as_sqlalchemys_text_of_its_utc_time(at: datetime) -> None:
    assert SQLALCHEMY_TEXT is not None and OURS is not None
    assert OURS(at) == SQLALCHEMY_TEXT(at.astimezone(UTC).replace(tzinfo=None))
    assert OURS(None) is None
