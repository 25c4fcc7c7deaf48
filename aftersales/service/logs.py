"""The services' logs: the standard `logging` module, one JSON object per line on
standard error (`time`, `level`, `event`, then the record's own fields), so that journald,
Loki or `jq` read them without a parser of ours.

A record's fields are passed as `extra={"fields": {...}}`; its message is the `event`.
Secrets never reach a log line: nothing here reads the environment, and the callers log
no header, body or key."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

#: The logger of both services (uvicorn's own loggers are sent through the same handler).
LOGGER = "aftersales"


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, event, fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        if record.name != LOGGER:
            doc["logger"] = record.name
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update({k: v for k, v in fields.items() if k not in doc})
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]  # one line: the error, never a traceback
            doc["error"] = f"{type(error).__name__}: {error}"
        return orjson.dumps(doc, default=str).decode()


def configure(level: str = "info", stream: TextIO | None = None) -> logging.Logger:
    """Send the service's records, and uvicorn's, as JSON lines to `stream` (standard
    error); the service's logger."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines())
    for name in (LOGGER, "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True  # a line per request: metrics
    return logging.getLogger(LOGGER)


def log(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with its fields."""
    logger.log(level, event, extra={"fields": fields})
