"""The command file's lines (SPEC section 6) as pydantic v2 models.

Validation is strict: unknown fields, wrong types, zero or negative amounts and timestamps
without an offset are refused with `INPUT` and a message that names the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from aftersales.domain import rules
from aftersales.domain.order_platform import EVIDENCE_REFERENCES
from aftersales.domain.reconciliation import ORDER_FACTS
from aftersales.domain.zones import shared, zone
from aftersales.errors import CommandRefused

#: Documented limits of identifiers and texts (see docs/rules.md).
MAX_ID = 64
MAX_TEXT = 500
MAX_AMOUNT = 10**12  # fen: ten billion yuan
MAX_CASES = 10**6  # a case number
MAX_TOLERANCE = 366 * 24 * 3600  # seconds: a reconciliation tolerance of at most a year



#: Business time must lie in this range (documented limit; keeps deadline arithmetic finite).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
#: A fraction of a second, and the digits it has.
_FRACTION = re.compile(r"[.,](\d+)")


def _iso_text(value: Any) -> Any:
    """Parse ISO-8601 text here: pydantic would also read other strings (epoch seconds),
    and the standard library silently cuts a fraction below the microsecond."""
    if not isinstance(value, str):
        return value
    fraction = _FRACTION.search(value[16:]) if _ISO.match(value) else None
    if fraction is not None and len(fraction.group(1)) > 6:
        raise ValueError(f"more than six fractional digits ({fraction.group(1)}): times "
                         "are exact to the microsecond")
    try:
        if not _ISO.match(value):
            raise ValueError(value)
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO-8601 timestamp with an offset, "
                         "e.g. 2026-03-01T10:00:00+08:00") from None


def _plain_offset(at: datetime) -> datetime:
    """Keep the offset but as a standard-library timezone (what the event store decodes).
    A parsed time's zone is looked up as it is, and a year well inside the range needs no
    comparison of instants (2.2 to 1.1 µs a command)."""
    tz = at.tzinfo
    one = shared(tz) if type(tz) is timezone else zone(at.utcoffset() or timedelta(0))
    plain = at if one is tz else at.replace(tzinfo=one)
    if not EARLIEST.year < plain.year < LATEST.year - 1 and not EARLIEST <= plain < LATEST:
        raise ValueError(f"business time {at.isoformat()} is out of range: it must be from "
                         "1970 to 2199")
    return plain


#: What an identifier may hold (order, merchant, user, command ids; carriers, tracking).
ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
At = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_plain_offset)]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=r"\S")]
Amount = Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
#: A case's number within its order (from 1).
CaseNumber = Annotated[int, Field(ge=1, le=MAX_CASES)]
#: An evidence reference (an image id, a file name, a URL): no spaces.
Reference = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT,
                                             pattern=r"^\S+$")]


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    #: The fields beside `at` that are times (taken as instants in the command's identity).
    _other_times: ClassVar[tuple[str, ...]] = ()
    #: Optional fields added after the command was first defined: left out of its content
    #: while at their default, so a line written before them keeps its derived id.
    _added: ClassVar[tuple[str, ...]] = ()

    at: At
    command_id: Identifier | None = None

    def identity(self) -> tuple[str, str]:
        """(command id, digest of the content); the id is derived when absent.

        The content is canonical JSON of every field but `command_id` (and the fields
        `_added` later, while at their default), with `at` (and every other time) taken as
        an instant, so the same line re-ingested is the same command.
        """
        # What `model_dump(mode="json")` gives for these fields (text, integers, None),
        # without its per-field serializer calls, written by orjson: its bytes are those of
        # `json.dumps(sort_keys=True)` unless a text holds a character json escapes and
        # orjson does not (beyond ASCII, or DEL).  tests/unit/test_commands.py pins both.
        content = dict(self.__dict__)
        del content["command_id"]
        for name in self._added:
            if content[name] == type(self).model_fields[name].default:
                del content[name]
        content["at"] = self.at.astimezone(UTC)
        for name in self._other_times:  # None where optional and absent
            if content[name] is not None:
                content[name] = content[name].astimezone(UTC)
        canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
        if not canonical.isascii() or b"\x7f" in canonical:
            for name in ("at", *self._other_times):
                if content[name] is not None:
                    content[name] = content[name].isoformat()
            canonical = _CANONICAL.encode(content).encode()
        digest = hashlib.sha256(canonical).hexdigest()
        return (self.command_id or f"sha256:{digest[:40]}", digest)


class OrderCommand(_Command):
    order_id: Identifier


class PlaceOrder(OrderCommand):
    command: Literal["place_order"] = "place_order"
    payment: Literal["online", "cod"]
    merchant_id: Identifier
    user_id: Identifier
    goods_amount: Amount
    postage: Annotated[int, Field(ge=0, le=MAX_AMOUNT)] = 0
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CNY"


class Pay(OrderCommand):
    command: Literal["pay"] = "pay"


class ConfirmOrder(OrderCommand):
    command: Literal["confirm_order"] = "confirm_order"


class Ship(OrderCommand):
    command: Literal["ship"] = "ship"
    carrier: Identifier
    tracking_no: Identifier


class Deliver(OrderCommand):
    command: Literal["deliver"] = "deliver"


class Cancel(OrderCommand):
    command: Literal["cancel"] = "cancel"
    by: Literal["user", "merchant", "platform"]
    reason: Text = ""


class RequestReturn(OrderCommand):
    command: Literal["request_return"] = "request_return"
    amount: Amount | None = None
    reason: Text = ""
    #: The platform's own id of the case (its after-sale id), if it has one.
    case_ref: Identifier | None = None
    _added: ClassVar[tuple[str, ...]] = ("case_ref",)


class ApproveReturn(OrderCommand):
    command: Literal["approve_return"] = "approve_return"


class RejectReturn(OrderCommand):
    command: Literal["reject_return"] = "reject_return"
    reason: Reason


class WithdrawReturn(OrderCommand):
    command: Literal["withdraw_return"] = "withdraw_return"


class SubmitTracking(OrderCommand):
    """The carrier and tracking number may be unknown (a platform's push may carry
    neither)."""

    command: Literal["submit_tracking"] = "submit_tracking"
    carrier: Identifier | None = None
    tracking_no: Identifier | None = None


class ConfirmReceipt(OrderCommand):
    command: Literal["confirm_receipt"] = "confirm_receipt"


class UploadRefundVoucher(OrderCommand):
    command: Literal["upload_refund_voucher"] = "upload_refund_voucher"
    voucher_ref: Identifier
    amount: Amount


class RequestRefund(OrderCommand):
    command: Literal["request_refund"] = "request_refund"
    amount: Amount | None = None
    reason: Text = ""
    case_ref: Identifier | None = None
    _added: ClassVar[tuple[str, ...]] = ("case_ref",)


class RequestExchange(OrderCommand):
    command: Literal["request_exchange"] = "request_exchange"
    amount: Amount | None = None
    reason: Text = ""
    case_ref: Identifier | None = None
    _added: ClassVar[tuple[str, ...]] = ("case_ref",)


class AmendRequest(OrderCommand):
    """The user amends the open request before the merchant's answer: a new amount (and
    reason, if given)."""

    command: Literal["amend_request"] = "amend_request"
    amount: Amount
    reason: Text = ""


class RejectReceipt(OrderCommand):
    command: Literal["reject_receipt"] = "reject_receipt"
    reason: Reason


class ShipReplacement(OrderCommand):
    """The carrier and tracking number may be unknown."""

    command: Literal["ship_replacement"] = "ship_replacement"
    carrier: Identifier | None = None
    tracking_no: Identifier | None = None


class DeliverReplacement(OrderCommand):
    command: Literal["deliver_replacement"] = "deliver_replacement"


class ExtendDeadline(OrderCommand):
    command: Literal["extend_deadline"] = "extend_deadline"


class SetDeadline(OrderCommand):
    command: Literal["set_deadline"] = "set_deadline"
    _other_times: ClassVar[tuple[str, ...]] = ("until",)
    until: At
    reason: Text = ""


class Appeal(OrderCommand):
    command: Literal["appeal"] = "appeal"
    reason: Reason


def _references(evidence: list[str]) -> list[str]:
    if len(evidence) not in EVIDENCE_REFERENCES:
        raise ValueError(f"1 to 4 references (A-2), not {len(evidence)}")
    return evidence


class SubmitEvidence(OrderCommand):
    command: Literal["submit_evidence"] = "submit_evidence"
    evidence: Annotated[list[Reference], AfterValidator(_references)]
    note: Text = ""


class Arbitrate(OrderCommand):
    command: Literal["arbitrate"] = "arbitrate"
    outcome: Literal["user", "merchant"]
    #: `unknown`: a ruling from a platform's push carries no blame (`record_blame` later).
    blame: Literal["merchant", "user", "both", "platform", "creator", "unknown"]
    note: Text = ""


class WithdrawAppeal(OrderCommand):
    command: Literal["withdraw_appeal"] = "withdraw_appeal"
    reason: Text = ""


class RecordBlame(OrderCommand):
    """The platform's blame of a ruling recorded with blame `unknown`: of case number
    `case`, or by default the latest such ruling."""

    command: Literal["record_blame"] = "record_blame"
    blame: Literal["merchant", "user", "both", "platform", "creator"]
    case: CaseNumber | None = None


class Reconcile(OrderCommand):
    """A platform's account of a step the ledger had already taken (SPEC section 10):
    written by a feed's adapter (`aftersales.feeds`), or by hand."""

    command: Literal["reconcile"] = "reconcile"
    _other_times: ClassVar[tuple[str, ...]] = ("step_at", "deadline")
    _added: ClassVar[tuple[str, ...]] = ("case", "tolerance")
    source: Identifier
    ref: Identifier
    fact: Literal["approved", "rejected", "received", "refunded", "closed", "ruled",
                  "deadline", "cancelled"]
    step_at: At | None = None
    by: Literal["merchant", "system", "platform", "user", "carrier"] | None = None
    amount: Annotated[int, Field(ge=0, le=MAX_AMOUNT)] | None = None
    deadline: At | None = None
    outcome: Literal["user", "merchant"] | None = None
    #: The case the account is of (default: the latest); none for `cancelled` (the order).
    case: CaseNumber | None = None
    #: Whole seconds within which a time or deadline agrees with the ledger's.
    tolerance: Annotated[int, Field(ge=0, le=MAX_TOLERANCE)] = 0

    @model_validator(mode="after")
    def _order_fact_has_no_case(self) -> Reconcile:
        if self.fact in ORDER_FACTS and self.case is not None:
            raise ValueError(f"field 'case': the fact '{self.fact}' is about the order, "
                             "not a case")
        return self


class Tick(_Command):
    command: Literal["tick"] = "tick"


C = TypeVar("C", bound="_Command")

Command = (
    PlaceOrder | Pay | ConfirmOrder | Ship | Deliver | Cancel | RequestReturn | ApproveReturn
    | RejectReturn | WithdrawReturn | SubmitTracking | ConfirmReceipt | UploadRefundVoucher
    | RequestRefund | RequestExchange | AmendRequest | RejectReceipt | ShipReplacement
    | DeliverReplacement | ExtendDeadline | SetDeadline | Appeal | SubmitEvidence | Arbitrate
    | WithdrawAppeal | RecordBlame | Reconcile | Tick
)
COMMAND_NAMES = tuple(
    m.model_fields["command"].default for m in Command.__args__
)
_ADAPTER: TypeAdapter[Command] = TypeAdapter(
    Annotated[Command, Field(discriminator="command")]
)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise CommandRefused(rules.INPUT, f"field '{twice[0]}': given more than once")
    return found


_PAIRS = json.JSONDecoder(object_pairs_hook=_no_duplicate_keys)


def parse_command(line: str | bytes) -> Command:
    """One line of a command file as a command, or `CommandRefused('INPUT', ...)`."""
    try:
        # The standard parser sees what pydantic's would let pass: a key given twice
        # (last one wins there), nesting too deep, integers too long to read.
        _PAIRS.decode(line if isinstance(line, str) else line.decode())
    except RecursionError:
        raise CommandRefused(rules.INPUT, "not a JSON object: nested too deeply") from None
    except ValueError:
        pass  # not JSON at all: pydantic says where, below
    try:
        return _ADAPTER.validate_json(line, strict=True)
    except ValidationError as e:
        raise CommandRefused(rules.INPUT, describe(e)) from None


def build(model: type[C], fields: dict[str, Any]) -> C:
    """A command from Python values, or `CommandRefused('INPUT', ...)`."""
    try:
        return model(**fields)
    except ValidationError as e:
        raise CommandRefused(rules.INPUT, describe(e, tagged=False)) from None


def describe(error: ValidationError, *, tagged: bool = True) -> str:
    """The first problem of a validation error, naming the field."""
    first = error.errors(include_url=False)[0]
    kind, loc, msg = first["type"], first["loc"], first["msg"]
    if kind == "json_invalid":
        # The parser counts lines and columns within the one line it was given: its
        # "line 1" would contradict the file's line number, so only the column is kept.
        why = re.sub(r" at line \d+ column (\d+)$", r" at column \1",
                     str(first["ctx"].get("error", msg)))
        return f"not a JSON object: {why}"
    if kind in ("model_attributes_type", "model_type", "dict_type"):
        if isinstance(first.get("input"), list):
            return ("a line must be one JSON object, not an array: the file must be JSON "
                    "Lines, one command per line")
        return "a line must be a JSON object"
    if kind == "union_tag_not_found":
        return "field 'command': missing"
    if kind == "union_tag_invalid":
        return (f"field 'command': unknown command {first['input'].get('command')!r}; "
                f"expected one of {', '.join(COMMAND_NAMES)}")
    msg = msg.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        msg = _pattern_words(str(first["ctx"]["pattern"]), first["input"])
    if kind == "timezone_aware":
        msg = "a timestamp needs an offset, e.g. 2026-03-01T10:00:00+08:00"
    if not loc:
        return msg
    path = loc[1:] if tagged else loc  # a tagged union puts the tag first
    if not path and kind == "value_error":  # the model's own check: it names the field
        return msg
    field = ".".join(str(x) for x in path) or str(loc[0])
    if kind == "extra_forbidden":
        return f"field '{field}': unknown field"
    if kind == "missing":
        return f"field '{field}': required"
    return f"field '{field}': {msg}"


#: What the other patterns ask, in words (an identifier's: `_pattern_words`).
_PATTERNS = {r"\S": "must not be blank", r"^\S+$": "must hold no spaces",
             r"^[A-Z]{3}$": "must be three capital letters, a currency code such as CNY"}


def _pattern_words(pattern: str, value: object) -> str:
    """A pattern a text did not match, said in words (the first character an identifier
    may not hold named, escaped: a terminal shows it as it is)."""
    if pattern != ID_PATTERN:
        return f"{_PATTERNS.get(pattern, 'is not of the form expected')}, got {_shown(value)}"
    text = str(value)
    at, bad = next(((n, ch) for n, ch in enumerate(text, 1)
                    if not (ch.isascii() and (ch.isalnum() or ch in "_.:-"))), (0, ""))
    return (f"{_shown(value)} holds {_character(bad)} at character {at}: an id holds only "
            "letters A-Z and a-z, digits 0-9 and the signs _ . : - (no spaces)")


def _character(ch: str) -> str:
    names = {" ": "a space", "\t": "a tab", "\n": "a line break", "\r": "a carriage return"}
    if ch in names:
        return names[ch]
    shown = repr(ch) if ch.isprintable() else ascii(ch)
    return shown if ch.isascii() else f"{shown} (U+{ord(ch):04X})"


def _shown(value: object, most: int = 40) -> str:
    text = ascii(value) if not isinstance(value, str) or not value.isprintable() \
        else repr(value)
    return text if len(text) <= most else text[:most - 3] + "..."
