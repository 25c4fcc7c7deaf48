"""An order's timeline page (`aftersales history ORDER_ID --format html`): every event on a
time axis in its actor's lane, every deadline as it stood (named by its rule: the name of
the violation or lapse its passing counts, the rule ID beside), the timeouts at their
instants, the arbitration with its outcome and blame, a key to all of it, the deadlines
as a table and the audit trail.

The drawing is as wide as a 1280 px screen shows whole (narrower, it scrolls in its own
frame); its height grows with what it holds.  No label covers another: an event's label
goes under its mark, or over it, or further under..., the first place free
(`aftersales.cli.page_text.place`), its lane as high as its labels need; a deadline's row
is named in the margin, and its marks say what became of them where there is room."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from aftersales.application.status import history_entry
from aftersales.cli.deadlines import ASKS, Span, deadline_spans, name
from aftersales.cli.human import local, yuan
from aftersales.cli.page_text import place, text_width
from aftersales.cli.render import detail
from aftersales.cli.templating import generated_at, render
from aftersales.domain.cases import ReturnCase
from aftersales.domain.events import DeadlineMissed, OrderEvent
from aftersales.domain.steps import TIMEOUTS

#: Where an instant is drawn along the axis, px.
Axis = Callable[[datetime], float]
#: The lanes of a timeline, top to bottom.
LANES = ("user", "merchant", "carrier", "platform", "system")
#: The drawing's width and right margin, px (the left margin fits the names in it).
WIDTH, RIGHT = 1100, 16
AXIS = 22  # the dates' strip
LINE = 14  # a row of labels
ROW = 30  # a deadline's row
#: The colour of a deadline by what became of it.
FATES = {"met": "#59a14f", "missed": "#e15759", "moved": "#9a9a9a", "pending": "#f28e2b"}


def timeline_page(events: Sequence[OrderEvent], zone: tzinfo, generated: datetime,
                  source: str) -> str:
    """One order's life on a time axis (see the module's docstring)."""
    entries = [history_entry(e) for e in events]
    spans, states = deadline_spans(events)
    last = states[-1]
    first_at = events[0].at
    end_at = max([e.at for e in events] + [s.due for s in spans])
    length = max((end_at - first_at).total_seconds(), 3600.0)
    start = first_at - timedelta(seconds=length * 0.03)
    finish = end_at + timedelta(seconds=length * 0.05)
    rows: dict[tuple[str, int | None], str] = {}
    cases = {s.case for s in spans if s.case is not None}
    for s in spans:
        rows.setdefault((s.rule, s.case), f"{name(s.rule)} ({s.rule})" + (
            f", case {s.case}" if len(cases) > 1 and s.case is not None else ""))
    left = round(max(text_width(t) for t in [*LANES, *rows.values()]) + 16)
    total = (finish - start).total_seconds()

    def x(at: datetime) -> float:
        return round(left + (WIDTH - left - RIGHT) * (at - start).total_seconds() / total, 1)

    disputes = _disputes(last.cases, finish, x)
    strip = place([(d["x1"] + 4, d["x1"] + 4 + text_width(d["label"])) for d in disputes],
                  lo=left + 2, hi=WIDTH - RIGHT - 2)
    for dispute, box in zip(disputes, strip, strict=True):
        assert box is not None
        dispute.update(tx=box.left, ty=AXIS + 13 + LINE * box.row)
    top = AXIS + (LINE * (1 + max(b.row for b in strip if b)) + 6 if disputes else 0)
    marks, lanes, bottom = _lanes(events, entries, zone, x, left, top)
    for dispute in disputes:
        dispute.update(y1=AXIS, y2=bottom)
    deadline_top = bottom + 12
    order = list(rows)
    deadlines = [_deadline(s, rows, order.index((s.rule, s.case)), deadline_top, x, finish,
                           zone) for s in spans]
    _fate_labels(deadlines, left)
    height = deadline_top + ROW * len(rows) + 8
    return render("timeline.html.j2",
        order=last, case=last.latest_case, events=marks, entries=entries,
        deadlines=deadlines, rows=[{"name": n, "y": deadline_top + ROW * i + ROW / 2}
                                   for i, n in enumerate(rows.values())],
        rules=[_rule(rule) for rule in dict.fromkeys(r for r, _ in rows)],
        disputes=disputes, lanes=lanes, ticks=_ticks(start, finish, zone, x, left),
        width=WIDTH, height=height, left=left, right=RIGHT, axis=AXIS,
        fates=FATES, generated=generated_at(generated, zone), source=source, yuan=yuan,
        local=local, zone=zone,
        details=[[(k, detail(event, k, v, zone, last.currency))
                  for k, v in entry["details"].items() if v not in (None, "")]
                 for event, entry in zip(events, entries, strict=True)])


def _lanes(events: Sequence[OrderEvent], entries: list[dict[str, Any]], zone: tzinfo,
           x: Axis, left: float, top: float
           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """The events' marks and labels, lane by lane from `top`; the lanes; their bottom.
    A lane's labels take rows under its marks and over them, alternately, the first free
    one for each; the lane is as high as its rows need."""
    marks: list[dict[str, Any]] = []
    lanes = []
    for lane in LANES:
        mine = [(e, entry) for e, entry in zip(events, entries, strict=True)
                if (e.actor if e.actor in LANES else "system") == lane]
        texts = [entry["event"] + (f" ({entry['rule']})" if isinstance(e, DeadlineMissed)
                                   else "") for e, entry in mine]
        boxes = place([(x(e.at) - text_width(t) / 2, x(e.at) + text_width(t) / 2)
                       for (e, _), t in zip(mine, texts, strict=True)],
                      lo=left + 2, hi=WIDTH - RIGHT - 2)
        used = [b.row for b in boxes if b is not None]
        above = sum(1 for r in set(used) if r % 2)
        below = len(set(used)) - above
        centre = top + max(12 + LINE * above, 23)
        end = max(centre + 9 + LINE * below + 4, top + 46)
        lanes.append({"name": lane, "top": top, "height": end - top, "y": centre})
        for (event, entry), text, box in zip(mine, texts, boxes, strict=True):
            assert box is not None
            level = box.row // 2
            marks.append({
                "x": x(event.at), "y": centre, "lx": (box.left + box.right) / 2,
                "ly": centre - 12 - LINE * level if box.row % 2 else
                centre + 20 + LINE * level,
                "label": text, "event": entry["event"], "actor": event.actor,
                "version": entry["version"], "at": entry["at"],
                "local": local(event.at, zone), "rule": entry["rule"],
                "timeout": isinstance(event, DeadlineMissed),
                "title": f"{entry['version']}. {entry['event']} by {event.actor} at "
                         f"{local(event.at, zone)}" + (f" [{entry['rule']}]"
                                                       if entry["rule"] else "")})
        top = end
    marks.sort(key=lambda m: int(m["version"]))
    return marks, lanes, top


def _deadline(s: Span, rows: dict[tuple[str, int | None], str], row: int, top: float,
              x: Axis, finish: datetime, zone: tzinfo) -> dict[str, Any]:
    ended = (f"{s.by} by {s.actor} at {local(s.end, zone)}" if s.end is not None else "")
    return {
        "rule": s.rule, "name": name(s.rule), "row_name": rows[(s.rule, s.case)],
        "case": s.case, "fate": s.fate, "due": s.due.isoformat(), "due_at": s.due,
        "start": s.start, "end": s.end, "by": s.by, "actor": s.actor,
        "moved_from": s.moved_from, "x1": x(s.start), "x2": x(s.end or finish),
        "xd": x(s.due), "y": top + ROW * row + ROW / 2, "label": None,
        "title": f"{rows[(s.rule, s.case)]}: due {local(s.due, zone)}, set "
                 f"{local(s.start, zone)}" + (f", moved from {local(s.moved_from, zone)}"
                                              if s.moved_from else "")
                 + f"; {s.fate}" + (f": {ended}" if ended else ""),
    }


def _fate_labels(deadlines: list[dict[str, Any]], left: float) -> None:
    """What became of each deadline, beside its mark (after it, or else before it) where
    that covers neither another mark nor another label of its row; else none (its
    title, the colour and the table say it)."""
    taken: dict[float, list[tuple[float, float]]] = {}
    for d in deadlines:
        taken.setdefault(d["y"], []).append((d["xd"] - 8, d["xd"] + 8))
    for d in deadlines:
        w = text_width(d["fate"])
        boxes = taken[d["y"]]
        for a, b in ((d["xd"] + 12, d["xd"] + 12 + w), (d["xd"] - 12 - w, d["xd"] - 12)):
            if a >= left + 2 and b <= WIDTH - RIGHT - 2 and all(
                    b + 3 <= c or e + 3 <= a for c, e in boxes):
                boxes.append((a, b))
                d["label"] = {"x": a, "text": d["fate"]}
                break


def _rule(rule: str) -> dict[str, str]:
    """A deadline rule in the key: its name, ID, what it asks, and what its passing does."""
    t = TIMEOUTS[rule]
    missed = "a violation" if t.is_violation else "a user lapse"
    return {"rule": rule, "name": t.missed, "asks": ASKS[rule],
            "missed": f"{missed}; the system acts: {t.event} ({t.consequence})"}


def _disputes(cases: Sequence[ReturnCase], finish: datetime, x: Axis
              ) -> list[dict[str, Any]]:
    """Each arbitration: its band and, in words, how it ended (outcome and blame)."""
    found = []
    for case in cases:
        a = case.arbitration
        if a is None:
            continue
        ended = a.ruled_at or a.withdrawn_at
        status = a.status
        said = ("ruled for the " + str(a.outcome) + ", blame " + str(a.blame)
                if status == "ruled" else "withdrawn by the user" if status == "withdrawn"
                else "open")
        found.append({"case": case.number, "status": status, "outcome": a.outcome,
                      "blame": a.blame, "by": a.ruled_by, "x1": x(a.opened_at),
                      "x2": x(ended or finish), "label": f"arbitration of case "
                      f"{case.number}: {said}", "said": said, "arbitration": a})
    return found


def _ticks(start: datetime, finish: datetime, zone: tzinfo, x: Axis, left: float
           ) -> list[dict[str, Any]]:
    """Round times of the business zone along the axis, with their labels: midnights
    (every day, or every few days) or, on a short axis, hours or minutes; as many as fit
    apart.  A label at an edge is moved inside."""
    minutes = (finish - start).total_seconds() / 60
    room = (WIDTH - left - RIGHT) / minutes  # px per minute

    def fmt(step: int) -> str:
        return ("%m-%d %H:%M" if step < 1440 else "%m-%d" if minutes < 300 * 1440
                else "%Y-%m-%d")

    step = next(n for n in _STEPS if n * room >= text_width(f"{start:{fmt(n)}}") + 12
                or n == _STEPS[-1])
    at = start.astimezone(zone).replace(second=0, microsecond=0)
    of_day = at.hour * 60 + at.minute
    at -= timedelta(minutes=of_day if step >= 1440 else of_day % step)
    found = []
    while at < finish:
        if at > start:
            label = f"{at:{fmt(step)}}"
            tx, w = x(at), text_width(label)
            found.append({"x": tx, "label": label,
                          "lx": min(max(tx, w / 2 + 2), WIDTH - w / 2 - 2)})
        at += timedelta(minutes=step)  # wall-clock arithmetic: midnights across DST too
    return found


#: The steps between the axis's times, in minutes: 5 minutes to a year.
_STEPS = (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 4320, 10080, 20160, 43200,
          87840, 175680, 525600)
