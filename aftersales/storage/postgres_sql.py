"""The ledger's statements for PostgreSQL, in the schema and events table a recorder
names: its queries by name, the events table with the chained record's columns, and the
tables and indexes kept beside it (`aftersales.storage.postgres.PostgresLedgerRecorder`)."""

from __future__ import annotations

from typing import Any, NamedTuple

from psycopg.sql import SQL, Composed, Identifier

from aftersales.storage.port import REPORTED
from aftersales.storage.shard import POSTGRES_SHARD


class Statements(NamedTuple):
    queries: dict[str, SQL | Composed]
    events_table: Composed
    tables: list[Composed]


def statements(schema: str, table: str, id_type: str) -> Statements:
    """The statements of a ledger in `schema` whose events are in `table`, with ids of
    the column type `id_type` (the library's `ORIGINATOR_ID_TYPE`: "uuid" or "text",
    checked by it)."""
    s, t, kind = Identifier(schema), Identifier(table), SQL(id_type)

    def q(text: str) -> Composed:
        return SQL(text).format(s=s, t=t, i=kind)

    queries: dict[str, SQL | Composed] = {
        "upsert": q(
            "INSERT INTO {s}.ledger_deadlines VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (originator_id) DO UPDATE SET order_id = excluded.order_id, "
            "due = excluded.due, rule = excluded.rule, case_no = excluded.case_no"),
        "delete": q("DELETE FROM {s}.ledger_deadlines WHERE originator_id = %s"),
        "command": q("INSERT INTO {s}.ledger_commands VALUES (%s, %s, %s)"),
        # A row there already is the same decision (another writer's, on the same
        # version), or one an earlier version remembered that is now decided afresh.
        "refusal": q("INSERT INTO {s}.ledger_refusals VALUES (%s, %s, %s, %s) "
                     "ON CONFLICT (command_id, digest) DO UPDATE SET "
                     "code = excluded.code, reason = excluded.reason"),
        "message": q("INSERT INTO {s}.ledger_messages (outcome, code, reason, tag, "
                     "order_ids, message, key) VALUES (%s, %s, %s, %s, %s, %s, %s)"),
        "message_again": q("UPDATE {s}.ledger_messages SET outcome = %s, code = %s, "
                           "reason = %s, tag = %s, order_ids = %s, message = %s "
                           f"WHERE key = %s AND outcome = '{REPORTED}'"),
        "messages": q("SELECT key, outcome, code, reason, tag, order_ids, message "
                      "FROM {s}.ledger_messages WHERE key = ANY(%s)"),
        # `outcome` a literal: the partial index's term.
        "reported": q("SELECT key, outcome, code, reason, tag, order_ids, message "
                      "FROM {s}.ledger_messages WHERE outcome = '" + REPORTED + "' "
                      "AND key > %s AND key >= %s ORDER BY key LIMIT %s"),
        "reported_below": q("SELECT key, outcome, code, reason, tag, order_ids, message "
                            "FROM {s}.ledger_messages WHERE outcome = '" + REPORTED +
                            "' AND key > %s AND key >= %s AND key < %s "
                            "ORDER BY key LIMIT %s"),
        "refusals": q("SELECT command_id, digest, code, reason FROM {s}.ledger_refusals "
                      "WHERE command_id = ANY(%s)"),
        "due": q("SELECT originator_id, order_id FROM {s}.ledger_deadlines "
                 "WHERE due < %s AND due >= %s ORDER BY due LIMIT %s"),
        # The shard: the id's low four bits (see aftersales/storage/shard.py).
        "due_mine": q("SELECT originator_id, order_id FROM {s}.ledger_deadlines "
                      "WHERE due < %s AND due >= %s AND " + POSTGRES_SHARD + " %% %s = %s "
                      "ORDER BY due LIMIT %s"),
        "digest": q("SELECT digest FROM {s}.ledger_commands WHERE command_id = %s"),
        "digests": q("SELECT command_id, digest FROM {s}.ledger_commands "
                     "WHERE command_id = ANY(%s)"),
        "by_order": q(
            "SELECT notification_id, originator_id, originator_version, topic, state, "
            "event_digest FROM {s}.{t} WHERE notification_id <= %s AND "
            "(originator_id, originator_version) > (%s, %s) AND originator_id < %s "
            "ORDER BY originator_id, originator_version LIMIT %s"),
        "between": q("SELECT notification_id, originator_id FROM {s}.{t} "
                     "WHERE notification_id > %s AND notification_id <= %s"),
        "between_mine": q("SELECT notification_id, originator_id FROM {s}.{t} "
                          "WHERE notification_id > %s AND notification_id <= %s "
                          "AND " + POSTGRES_SHARD + " %% %s = %s"),
        # An order's rows, the events either side of each in the log that are not
        # its own (by id: ids next to its own), its head record and a recorded break,
        # in one statement: one snapshot.  (A join per event for each neighbour, as a
        # LATERAL subquery: an order of 200 events as of a time took 4.9 ms, 2.4 ms
        # before the log checks.)
        "many": q(
            "WITH own AS (SELECT originator_id, originator_version, topic, state, "
            "event_digest, notification_id, log_link, prev_id, prev_version, prev_link "
            "FROM {s}.{t} WHERE originator_id = ANY(%s)) "
            "SELECT 0 AS kind, originator_id, originator_version AS version, topic, "
            "state, event_digest AS digest, notification_id AS pos, log_link AS link, "
            "prev_id, prev_version, prev_link, NULL::text AS reason FROM own UNION ALL "
            "SELECT 3, originator_id, originator_version, NULL, NULL, event_digest, "
            "notification_id, log_link, prev_id, prev_version, prev_link, NULL "
            "FROM {s}.{t} WHERE notification_id = ANY(ARRAY(SELECT notification_id - 1 "
            "FROM own UNION SELECT notification_id + 1 FROM own EXCEPT "
            "SELECT notification_id FROM own)) UNION ALL "
            "SELECT 1, originator_id, version, NULL, NULL, event_digest, NULL, NULL, "
            "NULL, NULL, NULL, NULL FROM {s}.ledger_heads WHERE originator_id = ANY(%s) "
            "UNION ALL SELECT 2, originator_id, version, NULL, NULL, NULL, NULL, NULL, "
            "NULL, NULL, NULL, reason FROM {s}.ledger_breaks "
            "WHERE originator_id = ANY(%s) ORDER BY 1, 2, 3"),
        "nearest_before": q("SELECT notification_id, originator_id, originator_version, "
                            "event_digest, log_link, prev_id, prev_version, prev_link "
                            "FROM {s}.{t} WHERE notification_id < %s "
                            "ORDER BY notification_id DESC LIMIT 1"),
        "nearest_after": q("SELECT notification_id, originator_id, originator_version, "
                           "event_digest, log_link, prev_id, prev_version, prev_link "
                           "FROM {s}.{t} WHERE notification_id > %s "
                           "ORDER BY notification_id LIMIT 1"),
        "heads": q("SELECT originator_id, version, event_digest FROM {s}.ledger_heads "
                   "WHERE originator_id = ANY(%s)"),
        "heads_page": q("SELECT originator_id, version, event_digest "
                        "FROM {s}.ledger_heads WHERE originator_id > %s "
                        "ORDER BY originator_id LIMIT %s"),
        "put_heads": q(
            "INSERT INTO {s}.ledger_heads SELECT * FROM unnest(%s::{i}[], "
            "%s::bigint[], %s::bytea[]) ON CONFLICT (originator_id) DO UPDATE "
            "SET version = excluded.version, event_digest = excluded.event_digest"),
        "insert": q(
            "INSERT INTO {s}.{t} (originator_id, originator_version, topic, state, "
            "event_digest, log_link, prev_id, prev_version, prev_link) SELECT * FROM "
            "unnest(%s::{i}[], %s::bigint[], %s::text[], %s::bytea[], %s::bytea[], "
            "%s::bytea[], %s::{i}[], %s::bigint[], %s::bytea[]) RETURNING notification_id"),
        "last_link": q("SELECT notification_id, log_link, originator_id, "
                       "originator_version FROM {s}.{t} "
                       "ORDER BY notification_id DESC LIMIT 1"),
        "present": q("SELECT originator_id, originator_version FROM {s}.{t} "
                     "WHERE (originator_id, originator_version) IN "
                     "(SELECT * FROM unnest(%s::{i}[], %s::bigint[]))"),
        "links": q("SELECT notification_id, originator_id, originator_version, "
                   "event_digest, log_link, prev_id, prev_version, prev_link "
                   "FROM {s}.{t} WHERE notification_id > %s "
                   "ORDER BY notification_id LIMIT %s"),
        "breaks": q("SELECT originator_id, version, position, reason, found_at "
                    "FROM {s}.ledger_breaks ORDER BY originator_id"),
        "put_breaks": q("INSERT INTO {s}.ledger_breaks SELECT * FROM unnest(%s::{i}[], "
                        "%s::bigint[], %s::bigint[], %s::text[], %s::text[]) "
                        "ON CONFLICT (originator_id) DO NOTHING"),
        "checked": q("SELECT position, log_link, originator_id, version "
                     "FROM {s}.ledger_log_checked"),
        "set_checked": q("INSERT INTO {s}.ledger_log_checked VALUES (1, %s, %s, %s, %s) "
                         "ON CONFLICT (one) DO UPDATE SET position = excluded.position, "
                         "log_link = excluded.log_link, originator_id = "
                         "excluded.originator_id, version = excluded.version"),
        "event_there": q("SELECT 1 AS one FROM {s}.{t} WHERE originator_id = %s "
                         "AND originator_version = %s"),
        "log": q("SELECT notification_id, originator_id, originator_version, topic, "
                 "state, event_digest, log_link FROM {s}.{t} "
                 "WHERE notification_id >= %s AND notification_id <= %s "
                 "ORDER BY notification_id LIMIT %s"),
        "log_topics": q("SELECT notification_id, originator_id, originator_version, "
                        "topic, state, event_digest, log_link FROM {s}.{t} "
                        "WHERE notification_id >= %s AND notification_id <= %s "
                        "AND topic = ANY(%s) ORDER BY notification_id LIMIT %s"),
        "commands": q("SELECT command_id FROM {s}.ledger_commands"),
        "pending": q("SELECT originator_id, order_id, due, rule, case_no "
                     "FROM {s}.ledger_deadlines ORDER BY due"),
        "version": q("SELECT MAX(originator_version) AS v FROM {s}.{t} "
                     "WHERE originator_id = %s"),
        "columns": SQL("SELECT column_name FROM information_schema.columns "
                       "WHERE table_schema = %s AND table_name = %s"),
    }
    # The events table with the chained record's two columns.
    events_table = q(
        "CREATE TABLE IF NOT EXISTS {s}.{t} ("
        "originator_id {i} NOT NULL, originator_version bigint NOT NULL, "
        "topic text, state bytea, notification_id bigserial, "
        "event_digest bytea, log_link bytea, prev_id {i}, prev_version bigint, "
        "prev_link bytea, "
        "PRIMARY KEY (originator_id, originator_version)) "
        "WITH (autovacuum_enabled = true, autovacuum_vacuum_threshold = 100000000, "
        "autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000, "
        "autovacuum_analyze_scale_factor = 0.01)")
    tables = [
        q("CREATE TABLE IF NOT EXISTS {s}.ledger_heads ("
          "originator_id {i} PRIMARY KEY, version bigint NOT NULL, "
          "event_digest bytea NOT NULL)"),
        q("CREATE TABLE IF NOT EXISTS {s}.ledger_breaks ("
          "originator_id {i} PRIMARY KEY, version bigint NOT NULL, "
          "position bigint NOT NULL, reason text NOT NULL, found_at text NOT NULL)"),
        q("CREATE TABLE IF NOT EXISTS {s}.ledger_log_checked ("
          "one integer PRIMARY KEY CHECK (one = 1), position bigint NOT NULL, "
          "log_link bytea NOT NULL, originator_id {i} NOT NULL, version bigint NOT NULL)"),
        q("CREATE TABLE IF NOT EXISTS {s}.ledger_deadlines ("
          "originator_id {i} PRIMARY KEY, order_id text NOT NULL, "
          "due timestamptz NOT NULL, rule text NOT NULL, case_no integer)"),
        q("CREATE INDEX IF NOT EXISTS ledger_deadlines_due ON {s}.ledger_deadlines "
          "(due)"),
        q("CREATE TABLE IF NOT EXISTS {s}.ledger_commands ("
          "command_id text PRIMARY KEY, originator_id {i} NOT NULL, "
          "digest text NOT NULL)"),
        q("CREATE TABLE IF NOT EXISTS {s}.ledger_refusals ("
          "command_id text NOT NULL, digest text NOT NULL, code text NOT NULL, "
          "reason text NOT NULL, PRIMARY KEY (command_id, digest))"),
        # Keys compared byte by byte (as SQLite and Python do), whatever the
        # database's collation: a prefix's keys are one range.
        q("CREATE TABLE IF NOT EXISTS {s}.ledger_messages ("
          'key text COLLATE "C" PRIMARY KEY, outcome text NOT NULL, '
          "code text NOT NULL, reason text NOT NULL, tag bigint NOT NULL, "
          "order_ids text NOT NULL, message text NOT NULL)"),
        q("CREATE INDEX IF NOT EXISTS ledger_messages_reported ON {s}.ledger_messages "
          "(key) WHERE outcome = '" + REPORTED + "'"),
    ]
    return Statements(queries, events_table, tables)


def as_bytes(value: Any) -> bytes | None:
    """A bytea value as bytes (psycopg may give a memoryview)."""
    return None if value is None else bytes(value)
