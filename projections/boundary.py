"""The reporting boundary: what a reporting user is given.

On PostgreSQL the read models live in a schema of their own (`reporting` by default,
`projections.database.reporting_schema`), beside the ledger's tables.  `grant_reader` gives
a role SELECT on every read model — those there now, and those a rebuild creates later
(default privileges in the schema and in the rebuild's shadow schema; the swap carries the
grants of tables it replaces) — and nothing else: not a table of the ledger, not a write.

On SQLite there are no roles: the boundary is a file.  Give BI tools a read-model file of
their own (`--views sqlite:///reports.db`, or `AFTERSALES_VIEWS_DB`), never the ledger's.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from aftersales.errors import ViewsConfigError
from aftersales.storage.config import postgres_target
from projections.database import SHADOW_SUFFIX, ReadModels, reporting_schema


def grant_reader(views: ReadModels, role: str) -> list[str]:
    """Give `role` SELECT on the read models (now and after every rebuild) and nothing
    on the ledger's tables; the statements run, in order."""
    target = postgres_target(views.url)
    if target is None:
        raise ViewsConfigError(
            "grant-reader is for PostgreSQL; on SQLite give reporting tools a read-model "
            "file of their own (--views sqlite:///PATH or AFTERSALES_VIEWS_DB), never the "
            "ledger's file (docs/reporting.md)")
    schema = reporting_schema(target)
    done: list[str] = []
    with views.engine.begin() as conn:
        found = conn.execute(text("SELECT quote_ident(rolname) FROM pg_roles "
                                  "WHERE rolname = :r"), {"r": role}).scalar_one_or_none()
        if found is None:
            raise ViewsConfigError(
                f"there is no PostgreSQL role {role!r}: create it first, e.g. "
                f"CREATE ROLE {role} LOGIN PASSWORD '…'")
        statements = []
        for name in (schema, schema + SHADOW_SUFFIX):
            statements += [f'CREATE SCHEMA IF NOT EXISTS "{name}"',
                           f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{name}" '
                           f"GRANT SELECT ON TABLES TO {found}"]
        # USAGE on the read models' schema only: the shadow's half-built tables stay out
        # of sight, and carry the SELECT above into the schema when they are swapped in.
        statements.append(f'GRANT USAGE ON SCHEMA "{schema}" TO {found}')
        statements.append(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {found}')
        for statement in statements:
            conn.execute(text(statement))
            done.append(statement)
    # So that the role's queries name the read models without their schema; a ledger owner
    # who may not alter roles is told what to ask of someone who may.
    search_path = (f'ALTER ROLE {found} IN DATABASE "{target.url.database}" '
                   f'SET search_path = "{schema}"')
    try:
        with views.engine.begin() as conn:
            conn.execute(text(search_path))
        done.append(search_path)
    except sa_exc.DBAPIError:
        done.append(f"-- not allowed here; ask an administrator: {search_path}")
    return done
