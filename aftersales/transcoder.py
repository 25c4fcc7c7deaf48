"""The events' JSON codec: eventsourcing's `JSONTranscoder` format, written and read by orjson.

The stored bytes are the library's own (`{"at":{"_type_":"datetime_iso","_data_":...}}`,
compact separators, UTF-8 text unescaped), so stores written before this codec and after
it read the same, and either transcoder reads what the other wrote.  orjson does the
scanning and writing in native code; only the tagged values (datetimes and whatever else
is registered) pass through Python.  What orjson would treat otherwise falls back to the
library's encoder or decoder, which give the same result slowly: an integer beyond 64 bits
(orjson refuses to write it and reads it as a float), any float, and an object holding a
UUID (orjson would write it as a plain string, the library tags it).  The ledger's events
hold text, integers, booleans, None and datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder

_DATETIME = datetime
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME  # datetimes are tagged, as the library does


class FastJSONTranscoder(JSONTranscoder):
    """`JSONTranscoder` with orjson underneath (same bytes, same registered transcodings)."""

    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict and not any(type(v) is UUID for v in obj.values()):
            try:
                return orjson.dumps(obj, default=self._tagged, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass
        return super().encode(obj)

    def _tagged(self, o: Any) -> Any:
        if type(o) is _DATETIME:
            return {"_type_": "datetime_iso", "_data_": o.isoformat()}
        return self._encode_obj(o)

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
                kind = type(item)
                if kind is dict or kind is list:
                    value[key] = self._revive(item)
                elif kind is float:
                    raise _Inexact
            return self._decode_obj(value) if len(value) == 2 else value
        if type(value) is list:
            return [self._revive(x) for x in value]
        if type(value) is float:
            raise _Inexact
        return value


class _Inexact(Exception):
    """orjson read a number the library's decoder reads differently."""
