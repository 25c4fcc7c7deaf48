"""The ledger's recorders: eventsourcing's, plus the deadline index and the command ids
written in the same transaction as the events.  One module per store."""
