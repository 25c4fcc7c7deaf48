"""The generated workload (`aftersales gen`, the demo, the benchmark): every kind of case
and deadline change by default, the returns-only workload of earlier versions without
`kinds`, and in both every command legal in the order it comes."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from aftersales import Ledger
from aftersales.devtools.workload import Workload, generate
from aftersales.ingest.serial import ingest

NEW_COMMANDS = {"request_refund", "request_exchange", "reject_receipt", "ship_replacement",
                "deliver_replacement", "extend_deadline", "set_deadline", "appeal",
                "submit_evidence", "arbitrate"}


def commands(w: Workload) -> Counter[str]:
    return Counter(line["command"] for line in generate(w))


def test_the_workload_has_every_kind_in_realistic_proportions() -> None:
    found = commands(Workload(orders=3000, seed=7))
    assert set(found) >= NEW_COMMANDS
    # refund-only is common, exchanges rarer than returns
    assert found["request_exchange"] < found["request_refund"] < found["request_return"]
    assert found["set_deadline"] >= 1
    # about a third of the rejections are appealed; rulings go both ways
    rejections = found["reject_return"] + found["reject_receipt"]
    assert rejections / 5 < found["appeal"] < rejections / 2
    lines = list(generate(Workload(orders=3000, seed=7)))
    outcomes = Counter(x["outcome"] for x in lines if x["command"] == "arbitrate")
    assert outcomes["user"] and outcomes["merchant"]
    assert found["submit_evidence"] < found["appeal"]  # some merchants never send any


def test_without_kinds_it_is_the_returns_only_workload() -> None:
    found = commands(Workload(orders=3000, seed=7, kinds=False))
    assert not NEW_COMMANDS & set(found)
    assert sum(found.values()) == 14960  # the file earlier versions generated, line for line


@pytest.mark.parametrize("seed", [2, 3, 7])
def test_a_clean_ingest_of_the_workload_refuses_nothing(seed: int) -> None:
    """(Seeds 2 and 3 once generated a second appeal of one case: A-1 refuses it.)"""
    refused: list[str] = []
    for kinds in (True, False):
        ledger = Ledger("memory:")
        lines = [json.dumps(x).encode() for x in generate(
            Workload(orders=3000, seed=seed, kinds=kinds))]
        report = ingest(ledger, lines, lambda n, e: refused.append(f"{n}: {e}"))
        assert refused == [] and not report.refused, refused[:3]
        ledger.close()
