"""Fixed-offset time zones, one object per offset.

Every parsed timestamp would otherwise carry a `timezone` object of its own (56 bytes):
an order cached in memory holds a dozen timestamps, a batch of commands thousands.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache


@lru_cache(maxsize=4096)
def zone(offset: timedelta) -> timezone:
    """The one `timezone` object for this offset."""
    return UTC if not offset else timezone(offset)


def shared_zone(at: datetime) -> datetime:
    """`at` with its fixed offset as the shared `timezone` object for that offset."""
    tz = at.tzinfo
    if type(tz) is not timezone or tz is UTC:
        return at
    return at.replace(tzinfo=zone(tz.utcoffset(None)))
