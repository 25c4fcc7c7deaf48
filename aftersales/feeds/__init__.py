"""Platform feeds: a platform's own messages turned into ledger commands, and its account
of steps the ledger had taken reconciled against the rules (SPEC section 10).  Douyin is
the first platform (`douyin`); `run` applies a feed in business-time order."""
