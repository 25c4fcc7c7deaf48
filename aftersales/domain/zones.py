"""Fixed-offset time zones, one object per offset.

Every timestamp of a command would otherwise carry a `timezone` object of its own (56
bytes), and so would the deadlines and events derived from it: a batch holds thousands,
the order cache tens of thousands.
"""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

_SHARED: dict[timezone, timezone] = {UTC: UTC}  # equal zones (same offset) hash alike
_MOST = 4096


def zone(offset: timedelta) -> timezone:
    """The one `timezone` object for this offset."""
    tz = timezone(offset) if offset else UTC
    return _SHARED.get(tz) or _share(tz)


def shared(tz: timezone) -> timezone:
    """The one `timezone` object for this zone's offset (its name, if any, dropped)."""
    return _SHARED.get(tz) or zone(tz.utcoffset(None))


def _share(tz: timezone) -> timezone:
    if len(_SHARED) < _MOST:
        _SHARED[tz] = tz
    return tz

