"""The command line as a newcomer meets it: every option has help and every command says
its exit codes; `--rule` names the valid rules; user lapses have their own command; a JSON
array is refused as a whole; refusals do not run into the progress bar."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from aftersales.application.commands import parse_command
from aftersales.cli.parser import build_parser, every_command
from aftersales.cli.progress import Progress
from aftersales.errors import CommandRefused
from tests.e2e.test_cli import db, run

__all__ = ["db"]  # the store fixture, shared with test_cli


def commands() -> dict[str, argparse.ArgumentParser]:
    return every_command(build_parser())


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_option_has_help_and_every_command_its_exit_codes(name: str) -> None:
    command = commands()[name]
    bare = [a.dest for a in command._actions
            if not isinstance(a, argparse._HelpAction) and not a.help]
    assert bare == []
    assert (command.epilog or "").startswith("exit codes: 0 done")


def test_gen_takes_no_store_options(tmp_path: Path) -> None:
    assert {"--db", "--views"}.isdisjoint(commands()["gen"]._option_string_actions)
    assert run("gen", "--db", "sqlite:///x.db", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("given,said", [
    ("NOPE", "no violation is called 'NOPE'; the violations are RETURN_RESPONSE_48H"),
    ("UNPAID_24H", "UNPAID_24H is a lapse, not a violation: see `aftersales lapses`"),
])
def test_violations_refuses_an_unknown_rule_naming_the_valid_ones(
    tmp_path: Path, given: str, said: str,
) -> None:
    out = run("violations", "--rule", given, "--db", f"sqlite:///{tmp_path / 'l.db'}",
              cwd=tmp_path)
    assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "l.db").exists()


LAPSED = [
    {"command": "place_order", "order_id": "U1", "at": "2026-03-01T10:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "B1", "goods_amount": 100},
    {"command": "place_order", "order_id": "U2", "at": "2026-03-01T11:00:00+08:00",
     "payment": "online", "merchant_id": "M2", "user_id": "B2", "goods_amount": 100},
    {"command": "tick", "at": "2026-03-03T00:00:00+08:00"},
]


def test_lapses_lists_the_users_lapses_with_the_violations_filters(tmp_path: Path,
                                                                   db: str) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in LAPSED))
    assert run("ingest", str(path), "--db", db, cwd=tmp_path).returncode == 0
    every = json.loads(run("lapses", "--format", "json", "--db", db, cwd=tmp_path).stdout)
    assert [(x["order_id"], x["rule"], x["user_id"]) for x in every] == [
        ("U1", "UNPAID_24H", "B1"), ("U2", "UNPAID_24H", "B2")]
    one = json.loads(run("lapses", "--user", "B2", "--rule", "unpaid_24h", "--format",
                         "json", "--db", db, cwd=tmp_path).stdout)
    assert [x["order_id"] for x in one] == ["U2"]
    assert json.loads(run("lapses", "--merchant", "M1", "--since",
                          "2026-03-02T10:30:00+08:00", "--format", "json", "--db", db,
                          cwd=tmp_path).stdout) == []
    table = run("lapses", "--db", db, cwd=tmp_path).stdout.splitlines()
    assert table[0].split()[:3] == ["deadline", "rule", "merchant_id"] and len(table) == 3
    assert run("lapses", "--rule", "RETURN_RESPONSE_48H", "--db", db,
               cwd=tmp_path).returncode == 2


@pytest.mark.parametrize("text", [
    '[\n {"command": "tick", "at": "2026-03-01T00:00:00+08:00"}\n]\n',
    '[{"command": "tick", "at": "2026-03-01T00:00:00+08:00"}]\n',
])
@pytest.mark.parametrize("from_stdin", [False, True])
def test_a_json_array_is_refused_as_a_whole_saying_json_lines(
    tmp_path: Path, text: str, from_stdin: bool,
) -> None:
    path = tmp_path / "commands.json"
    path.write_text(text)
    store = f"sqlite:///{tmp_path / 'l.db'}"
    out = (run("ingest", "-", "--db", store, cwd=tmp_path, stdin=text) if from_stdin
           else run("ingest", str(path), "--db", store, cwd=tmp_path))
    assert out.returncode == 2
    assert "is a JSON array: a command file is JSON Lines" in out.stderr
    assert not (tmp_path / "l.db").exists()  # nothing applied, nothing created


def test_an_array_on_one_line_of_a_file_says_json_lines() -> None:
    with pytest.raises(CommandRefused) as refused:
        parse_command(b'[{"command": "tick", "at": "2026-03-01T00:00:00+08:00"}]')
    assert "not an array: the file must be JSON Lines" in str(refused.value)


def test_a_line_that_is_not_json_names_the_column_not_a_line_of_its_own() -> None:
    with pytest.raises(CommandRefused) as refused:
        parse_command(b'{"command": "tick", "at": ')
    assert "line 1" not in str(refused.value)
    assert str(refused.value).endswith("at column 26")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_refusal_is_printed_on_its_own_line_and_the_bar_drawn_again() -> None:
    screen = Terminal()
    progress = Progress("ingest", 100, stream=screen)
    progress._draw()  # the bar is showing
    progress.say("line 7: INPUT: a line must be a JSON object")
    before, after = screen.getvalue().split("line 7:")
    assert before.endswith("\r\x1b[2K")  # the bar cleared first
    said, redrawn = after.split("\n", 1)
    assert said == " INPUT: a line must be a JSON object"
    assert redrawn.startswith("\ringest [")  # and drawn again below it


def test_without_a_terminal_a_refusal_is_a_plain_line() -> None:
    piped = io.StringIO()
    progress = Progress("ingest", 100, stream=piped)
    progress.advance(50)
    progress.say("line 7: INPUT: x")
    assert piped.getvalue() == "line 7: INPUT: x\n"


CANCELLED = [
    {"command": "place_order", "order_id": "C1", "at": "2026-03-01T10:00:00+08:00",
     "payment": "online", "merchant_id": "M1", "user_id": "B1", "goods_amount": 100},
    {"command": "pay", "order_id": "C1", "at": "2026-03-01T10:05:00+08:00"},
    {"command": "cancel", "order_id": "C1", "at": "2026-03-01T11:00:00+08:00",
     "by": "platform", "reason": "the user asked customer service"},
]


def test_status_says_who_cancelled_the_order(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in CANCELLED))
    store = f"sqlite:///{tmp_path / 'l.db'}"
    assert run("ingest", str(path), "--db", store, cwd=tmp_path).returncode == 0
    doc = json.loads(run("status", "C1", "--json", "--db", store, cwd=tmp_path).stdout)
    assert (doc["order_status"], doc["cancelled_by"]) == ("cancelled", "platform")
    text = run("status", "C1", "--db", store, cwd=tmp_path).stdout
    assert text.splitlines()[0].endswith(": cancelled by platform")
