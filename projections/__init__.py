"""The read side: plain SQL tables that reporting tools query, kept from the ledger's events.

`schema` (the tables), `fold` (an event into rows), `calendar` (the business days, none
skipped), `live` (the projection with its tracking
position), `rebuild` (replay into shadow tables, swapped in at once), `runner` (catch up,
follow, rebuild, verify), `queries` and `reports` (the questions of `aftersales report` and
the pages' data), `database` (the read models' database and its reporting boundary).

This package reads the ledger only through the domain events and the reading port of the
store (`aftersales.storage.reading.LedgerReading`); nothing in `aftersales/` imports it but
the command line, its composition root (`tests/unit/test_architecture.py`).
"""
