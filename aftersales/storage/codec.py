"""The events' JSON codec: eventsourcing's `JSONTranscoder` format, written and read by orjson.

The stored bytes are the library's own (`{"at":{"_type_":"datetime_iso","_data_":...}}`,
compact separators, UTF-8 text unescaped), so stores written before this codec and after
it read the same, and either transcoder reads what the other wrote.  orjson scans and
writes in native code, datetimes included: its RFC 3339 text is `isoformat()`'s for naive
datetimes and for offsets of whole minutes, which is what the ledger's are (other zones are
written by `isoformat()`).

orjson writes only flat objects of text, integers, booleans, None and datetimes (the
ledger's events).  Anything else, an integer beyond 64 bits, and reading any float (orjson
reads a long integer as one) take the library's path, which gives the same result slowly
(orjson would write a UUID as plain text where the library tags it, and infinity as null
where the library writes Infinity).
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any

import orjson
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Transcoding

_DATETIME = datetime
_FROM_ISO = datetime.fromisoformat
_NOT_PLAIN = frozenset({dict, list, float})
#: The values of the objects orjson writes here; anything else takes the library's path.
_PLAIN = frozenset({str, int, bool, type(None), datetime})


def _native_iso(tz: tzinfo | None) -> bool:
    """Whether orjson writes datetimes in this zone as `isoformat()` does: naive ones and
    fixed offsets of whole minutes (it rounds an offset with seconds to the minute)."""
    if tz is None:
        return True
    if type(tz) is not timezone:
        return False  # the offset may depend on the date: ask `isoformat()` each time
    offset = tz.utcoffset(None)
    return offset.seconds % 60 == 0 and offset.microseconds == 0


class FastJSONTranscoder(JSONTranscoder):
    """`JSONTranscoder` with orjson underneath (same bytes, same registered transcodings)."""

    def __init__(self) -> None:
        super().__init__()
        self._zones: dict[tzinfo | None, bool] = {}
        self._iso_dates = False
        self._native_dates = False

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        # The fast paths write and read datetimes as the library's own DatetimeAsISO does;
        # a subclass (or any other transcoding) registered for them is the library's to
        # call, as it dispatches by exact type.
        self._iso_dates = type(self.names.get("datetime_iso")) is DatetimeAsISO
        self._native_dates = type(self.types.get(_DATETIME)) is DatetimeAsISO

    def encode(self, obj: Any) -> bytes:
        if type(obj) is not dict or not self._native_dates:
            return super().encode(obj)
        tagged = None
        for key, value in obj.items():
            kind = type(value)
            if kind is _DATETIME:
                tz = value.tzinfo
                native = self._zones.get(tz)
                if native is None:
                    native = self._zones[tz] = _native_iso(tz)
                if tagged is None:
                    tagged = obj.copy()
                tagged[key] = {"_type_": "datetime_iso",
                               "_data_": value if native else value.isoformat()}
            elif kind not in _PLAIN:
                return super().encode(obj)
        try:
            written = orjson.dumps(obj if tagged is None else tagged)
        except orjson.JSONEncodeError:
            return super().encode(obj)
        # orjson's bytes keep its 4 KiB buffer; a batch holds thousands: copy them compact.
        return b"%b" % (written,)

    def decode(self, data: bytes) -> Any:
        try:
            return self._revive(orjson.loads(data))
        except (orjson.JSONDecodeError, _Inexact):
            return super().decode(data)

    def _revive(self, value: Any) -> Any:
        """Replace tagged objects (`{"_type_": name, "_data_": data}`) by their values,
        depth first, as the library's object hook does.  A float may be an integer too
        long for orjson, which reads it as a float: the library's decoder then reads it."""
        if type(value) is dict:
            for key, item in value.items():
                if type(item) not in _NOT_PLAIN:
                    continue
                if type(item) is float:
                    raise _Inexact
                # The library's datetime, read here without its lookups.
                data = item.get("_data_") if type(item) is dict and len(item) == 2 else None
                if type(data) is str and item.get("_type_") == "datetime_iso" and \
                        self._iso_dates:
                    value[key] = _FROM_ISO(data)
                else:
                    value[key] = self._revive(item)
            return self._decode_obj(value) if len(value) == 2 else value
        if type(value) is list:
            return [self._revive(x) for x in value]
        if type(value) is float:
            raise _Inexact
        return value


class _Inexact(Exception):
    """orjson read a number the library's decoder reads differently."""
