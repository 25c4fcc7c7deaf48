"""Every rule ID of SPEC sections 2-5, 7, 8, 9 and 11, and every refusal code, is
documented in docs/rules.md and tested by name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULE_IDS = [
    "C-COD-1", "C-COD-2", "C-COD-3", "C-ON-1", "C-ON-2", "C-ON-3", "C-ON-4", "C-ANY",
    "R-1", "R-2", "R-3", "R-ON-4", "R-COD-4", "R-5",
    "F-1", "F-2", "F-3", "E-1", "E-2", "R-6", "A-1", "A-2", "A-3", "A-4", "D-1", "D-2",
    "INPUT", "TIME", "UNKNOWN-ORDER", "DUPLICATE-ORDER", "DUPLICATE-ID", "FLOW", "R-OPEN",
    "R-AMOUNT", "DEADLINE", "INTEGRITY", "FUTURE",
    "RETURN_RESPONSE_48H", "RECEIPT_CONFIRM_7D", "COD_REFUND_VOUCHER_48H", "UNPAID_24H",
    "RETURN_TRACKING_7D", "REFUND_RESPONSE_48H", "EXCHANGE_RESHIP_48H",
    "ARBITRATION_EVIDENCE_48H",
    "I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10", "I11",
]


def all_test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"def (test_\w+)", path.read_text()))
    return names


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_id_is_documented_with_its_tests(rule_id: str) -> None:
    doc = (ROOT / "docs" / "rules.md").read_text()
    assert f"`{rule_id}`" in doc


@pytest.mark.parametrize("rule_id", [r for r in RULE_IDS if not re.fullmatch(r"I\d+", r)])
def test_rule_id_has_a_test_named_for_it(rule_id: str) -> None:
    token = rule_id.replace("-", "_")
    assert any(re.search(rf"(^|_){token}(_|$)", name) for name in all_test_names())


def test_every_test_named_in_docs_exists() -> None:
    doc = (ROOT / "docs" / "rules.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", doc))
    assert named and named <= all_test_names()


def test_every_rule_id_and_refusal_code_is_one_constant_of_the_rules_module() -> None:
    from aftersales.domain import rules

    named = {r for r in RULE_IDS if not re.fullmatch(r"I\d+", r) and "_" not in r}
    assert set(rules.RULE_IDS) | set(rules.REFUSAL_CODES) == named
    assert len(rules.RULE_IDS) + len(rules.REFUSAL_CODES) == len(named)
    for code in named:
        assert getattr(rules, code.replace("-", "_")) == code
