"""The command line's option types and the groups of options several commands share.

Each type checks its value as it is read, before any work is done: a count of 0, a
negative or not-a-number wait, a port out of range, a file to write in a directory that
does not exist, a rule that is not one.  Nothing heavy is imported here: a business time
loads the command models, and a rule the rules table, only when one is given.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from aftersales.settings import (
    ANCHOR_ENV_VAR,
    DEFAULT_URL,
    ENV_VAR,
    PARTITIONS_ENV_VAR,
    VIEWS_ENV_VAR,
)

#: Where an anchor log may be (the anchor options' help and their errors).
ANCHOR_TARGETS = ("a file, sqlite:///PATH or postgresql://USER@HOST/DB, outside the "
                  "ledger's database")


def rule_of(kind: str) -> Callable[[str], str]:
    """An argparse type for --rule: a violation's (or a lapse's) name, in any case; any
    other is refused, naming the valid ones (and where a rule of the other kind is)."""
    def rule(text: str) -> str:
        from aftersales.domain.steps import LAPSE_RULES, VIOLATION_RULES
        names, others = ((VIOLATION_RULES, LAPSE_RULES) if kind == "violation"
                         else (LAPSE_RULES, VIOLATION_RULES))
        name = text.strip().upper()
        if name in names:
            return name
        if name in others:
            other = "lapse" if kind == "violation" else "violation"
            raise argparse.ArgumentTypeError(
                f"{name} is a {other}, not a {kind}: see `aftersales "
                f"{'lapses' if other == 'lapse' else 'violations'}`")
        raise argparse.ArgumentTypeError(
            f"no {kind} is called {text!r}; the {kind}s are {', '.join(names)}")
    return rule


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected {'a whole number' if kind is int else 'a number'}"
        ) from None


def count(least: int = 1, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `least` (to `most`)."""
    def read(text: str) -> int:
        value = int(_number(text, int))
        if value < least or (most is not None and value > most):
            upper = f" to {most:,}" if most is not None else " or more"
            raise argparse.ArgumentTypeError(f"{text!r}: expected {least:,}{upper}")
        return value
    read.__name__ = "count"  # argparse names the type in its own errors
    return read


def seconds(positive: bool = False, most: float = 7 * 86400.0) -> Callable[[str], float]:
    """An argparse type: seconds, 0 (more than 0 if `positive`) to `most`."""
    def read(text: str) -> float:
        value = _number(text, float)
        low = value > 0 if positive else value >= 0
        if not (low and value <= most):  # (NaN is neither)
            lower = "more than 0" if positive else "0"
            raise argparse.ArgumentTypeError(f"{text!r}: expected {lower} to {most:,.0f} "
                                             "seconds")
        return value
    read.__name__ = "seconds"
    return read


def port(text: str) -> int:
    """A TCP port: 1 to 65535."""
    value = int(_number(text, int))
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 1 to 65535")
    return value


def listening_port(text: str) -> int:
    """A port to listen on: 1 to 65535, or 0 for a free one the system picks (the
    server prints the address it listens on)."""
    value = int(_number(text, int))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 1 to 65535 (0: a free one)")
    return value


def new_file(text: str) -> str:
    """A file the command will write: not a directory, in a directory that exists and may
    be written (checked before any work, so that a long run does not end in a failure to
    save its result)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory: give a file's path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: there is no directory {str(folder)!r}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text!r}: not writable")
    return text


def spool(text: str) -> str:
    """--spool: an earlier version's spool file, if there is one at this path (not a
    directory, and in a directory that exists)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory: give the spool file")
    if str(path.parent) and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: there is no directory "
                                         f"{str(path.parent)!r}")
    return text


def page_file(text: str) -> str:
    """demo --page: a file to write, or '' for none."""
    return new_file(text) if text else text


def lateness(text: str) -> float:
    """--lateness: 0 to 7 days, in seconds."""
    return seconds()(text)


def _minutes(text: str) -> float:
    """--anchor-every: more than 0 minutes (at most about two years)."""
    value = _number(text, float)
    if not 0 < value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{text!r}: expected more than 0 minutes")
    return value


def client_counts(text: str) -> tuple[int, ...]:
    """--clients: numbers of concurrent clients, 1 to 1000, comma-separated."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        counts = ()
    if not counts or not all(1 <= n <= 1000 for n in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers of clients, 1 to "
                                         "1000, comma-separated (e.g. 8,32,64)")
    return counts


def business_time(text: str) -> datetime:
    """An ISO-8601 timestamp with an offset, for --now and --as-of (as strict as a
    command's `at`, and saying what is wrong with it)."""
    from pydantic import TypeAdapter, ValidationError  # the models: loaded for a time only

    from aftersales.application.commands import At, describe
    try:
        value: datetime = TypeAdapter(At).validate_python(text)
    except ValidationError as e:
        why = re.sub(r"^field '[^']*': ", "", describe(e, tagged=False))
        raise argparse.ArgumentTypeError(f"{text!r}: {why}") from None
    return value


def anchor_every(p: argparse.ArgumentParser, follow: bool) -> None:
    """The options of a command that anchors as it goes (`tick`, `project --follow`)."""
    p.add_argument("--anchor-every", metavar="MINUTES", type=_minutes, default=None,
                   help=("with --follow, between batches" if follow else "after the sweep")
                   + ": append an anchor (the log's position and head digest, with the "
                   "time) to the anchor log when its last anchor is this many minutes old "
                   "or older" + (", then every MINUTES" if follow else "")
                   + " (docs/operations.md, \"Anchoring the head outside the store\")")
    p.add_argument("--anchor-to", metavar="TARGET", default=None,
                   help=f"the anchor log of --anchor-every: {ANCHOR_TARGETS} (default: "
                   f"${ANCHOR_ENV_VAR})")


class Version(argparse.Action):
    """--version: the package's version."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        package = sys.modules[__name__.partition(".")[0]]  # loaded before this module
        print(f"aftersales {package.__version__}")
        parser.exit()


# --- options several commands share -----------------------------------------------------

def store(p: argparse.ArgumentParser) -> None:
    """Where the ledger is, and how long a store failure is waited out."""
    p.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                   help=f"store URL (default: ${ENV_VAR} or {DEFAULT_URL})")
    p.add_argument("--partitions", metavar="MAP", default=argparse.SUPPRESS,
                   help="a partitioned ledger: a file naming one store URL per partition, "
                   f"or the URLs separated by commas (default: ${PARTITIONS_ENV_VAR}; "
                   "docs/operations.md, \"Partitions\")")
    p.add_argument("--views", metavar="URL", default=argparse.SUPPRESS,
                   help=f"read-model URL (default: ${VIEWS_ENV_VAR} or the store's database)")
    p.add_argument("--retry-for", metavar="SECONDS", type=seconds(most=86400.0),
                   default=argparse.SUPPRESS,
                   help="how long a store failure that may pass (lost connection, locked "
                   "database, ...) is retried before giving up (default: "
                   "$AFTERSALES_RETRY_FOR or 60)")


def stream_name(text: str) -> str:
    """A JetStream stream's name: letters, digits, - and _."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise argparse.ArgumentTypeError(f"{text!r}: a stream's name is 1-64 letters, "
                                         "digits, - and _")
    return text


def partition(p: argparse.ArgumentParser, text: str) -> None:
    """--partition K: one partition of a partitioned ledger."""
    p.add_argument("--partition", metavar="K", type=count(0, 15), default=None, help=text)


def projecting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-project", action="store_true",
                   help="leave the read models for `aftersales project`")


def future(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-future", action="store_true",
                   help="accept business times more than $AFTERSALES_FUTURE_MARGIN "
                   "(default 600 s) ahead of the wall clock (replaying future-dated test "
                   "data)")


def ack(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ack", action="store_true",
                   help="print a line to standard output as each unit of work is committed")


def feeding(p: argparse.ArgumentParser) -> None:
    """How far a platform feed's times may lie from the ledger's and still agree."""
    p.add_argument("--tolerance", metavar="SECONDS", type=lateness, default=600.0,
                   help="platform feeds: how far the platform's time of a step its timers "
                   "took may lie from the ledger's and still agree (default 600)")
    p.add_argument("--refund-tolerance", metavar="SECONDS", type=lateness,
                   default=259200.0,
                   help="platform feeds: the same for money arriving (RefundSuccess; "
                   "default 259200, 72 hours)")


def listing(p: argparse.ArgumentParser, formats: Sequence[str], page: str = "") -> None:
    """The options of a query command: its window and its output's format."""
    p.add_argument("--since", metavar="T", type=business_time,
                   help="from business time T (ISO-8601 with an offset)")
    p.add_argument("--until", metavar="T", type=business_time,
                   help="before business time T")
    p.add_argument("--format", choices=formats, default="table",
                   help="an aligned table for a person (default), or JSON or CSV for a "
                   "program" + page)
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("--excel", action="store_true",
                   help="with --format csv: CSV for a spreadsheet (UTF-8 with a byte order "
                   "mark, CRLF, times in the business zone without offset, money in yuan "
                   "with two decimals)")


def generated(p: argparse.ArgumentParser) -> None:
    """The options of a generated workload (`gen`, `demo`)."""
    p.add_argument("--orders", type=count(1, 10_000_000), default=None,
                   help="how many orders the workload has (default 3000; 300 with "
                   "--platform douyin)")
    p.add_argument("--platform", choices=("douyin",), default=None,
                   help="douyin: a Douyin feed of one shop instead (push bodies and its "
                   "order export; docs/platforms/douyin.md)")
    p.add_argument("--seed", type=int, default=7,
                   help="the random seed: the same seed gives the same lines (default 7)")
    p.add_argument("--days", type=count(1, 3660), default=42,
                   help="business days simulated from 2026-03-01 (default 42)")
    p.add_argument("--returns-only", action="store_true",
                   help="returns only: the workload of earlier versions, line for line")
