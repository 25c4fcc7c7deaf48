"""Connections to PostgreSQL outside the library's pool (the read models, the anchor log),
made the way the ledger makes its own: every statement, lock and connect bounded, a peer
that went away noticed, and a server that does not answer at all given up on."""

from __future__ import annotations

import getpass
import os
from typing import Any

import psycopg
from psycopg.rows import DictRow

from aftersales.settings import Settings, millis
from aftersales.storage.config import PostgresTarget


class AnsweringConnection(psycopg.Connection[DictRow]):
    """A connection that stops waiting for a server that does not answer at all (a frozen
    server or host: its kernel may still acknowledge every packet, so neither TCP nor the
    server's own statement timeout ends the wait) after `answer_timeout` seconds, and is
    then closed: its state is unknown."""

    answer_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is not None or self.answer_timeout is None:
            return super().wait(gen, interval=interval, timeout=timeout)  # the caller's
        try:
            return super().wait(gen, interval=interval, timeout=self.answer_timeout)
        except _WAIT_TIMEOUT:
            self.close()
            raise psycopg.OperationalError(
                f"the PostgreSQL server did not answer within {self.answer_timeout:.0f} s "
                "(AFTERSALES_STATEMENT_TIMEOUT)") from None


def answering(timeout: float | None) -> type[AnsweringConnection]:
    """The connection class that waits at most `timeout` seconds for any answer."""
    return type("Answering", (AnsweringConnection,), {"answer_timeout": timeout})


#: psycopg's own signal that a wait ran out (private, hence looked up: psycopg >= 3.3).
_WAIT_TIMEOUT: type[BaseException] = getattr(psycopg.errors, "_WaitTimeout", TimeoutError)


def connect_kwargs(target: PostgresTarget, settings: Settings) -> dict[str, Any]:
    """psycopg's connection arguments for a PostgreSQL URL, with the ledger's session
    settings (`session`): for connections made outside the library's pool (the read
    models, the anchor log)."""
    u = target.url
    return {
        "host": u.host or "127.0.0.1", "port": u.port or 5432, "dbname": u.database,
        "user": u.username or os.environ.get("PGUSER") or getpass.getuser(),
        "password": u.password or os.environ.get("PGPASSWORD", ""),
        **session(settings.statement_timeout, target.lock_timeout(settings),
                  float(target.settings.get("connect_timeout", "5")),
                  target.schema if target.schema != "public" else None),
    }


def session(statement_timeout: float, lock_timeout: float, connect_timeout: float,
            schema: str | None = None) -> dict[str, Any]:
    """The connection parameters of every connection the ledger makes to PostgreSQL (its
    events and its read models): every statement and lock wait bounded, connecting too,
    and a peer that went away noticed within about 30 s (TCP keepalives)."""
    options = [f"-c statement_timeout={millis(statement_timeout)}",
               f"-c lock_timeout={millis(lock_timeout)}"]
    if schema:
        options.append(f"-c search_path={schema}")
    return {"connect_timeout": max(1, round(connect_timeout)), "keepalives": 1,
            "keepalives_idle": 15, "keepalives_interval": 5, "keepalives_count": 3,
            "tcp_user_timeout": 30_000, "options": " ".join(options)}
