"""`aftersales feed` (`feed inbox`): what the webhook's inbox received and applied, and
the oldest body waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersales import Ledger
from aftersales.cli.main import main


def test_feed_says_what_the_inbox_received_applied_and_keeps_waiting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    now = datetime.now(UTC)
    try:
        for n in range(3):
            ledger.index.inbox_add(b'[{"n":%d}]' % n, now - timedelta(hours=3 - n))
        assert ledger.index.inbox_add(b'[{"n":0}]', now) == (1, False)  # once
        ledger.index.inbox_mark_applied(2, now)
    finally:
        ledger.close()
    assert main(["--db", url, "feed", "--no-project"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(": 3 bodies received, 1 applied, 2 waiting")
    assert out[1].startswith("  oldest waiting: body 2, received ")
    assert out[1].endswith("(2 h ago)")
    assert main(["--db", url, "feed", "inbox", "--no-project"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == out[0]
