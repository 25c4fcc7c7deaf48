"""The reports made of the read models: the merchant scorecard, its rows and totals, the
currencies of its money, and the figures of the scorecard page's charts (the command line
renders them as a table, JSON, CSV or the page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from projections.captions import SCORECARD_CAPTION
from projections.database import ReadModels
from projections.queries import (
    compensation_per_month,
    currencies,
    per_day,
    recorded_days,
    scorecard_with_total,
)

#: The currency of orders placed without one (the command's default).
DEFAULT_CURRENCY = "CNY"


@dataclass
class Scorecard:
    """What the scorecard shows, read at once: its rows and totals, the currencies of its
    money, and (for the page) the charts' figures."""

    rows: list[dict[str, Any]]
    total: dict[str, Any]
    #: The orders' currencies (the money columns sum fen of them all when several).
    currencies: tuple[str, ...]
    #: violations and lapses per day and rule, compensation per month (for the page)
    charts: tuple[list[dict[str, Any]], ...] = ()
    #: the first and the last business day counted (for the page; None: none recorded)
    days: tuple[date | None, date | None] = (None, None)

    @property
    def currency(self) -> str:
        return "+".join(self.currencies) or DEFAULT_CURRENCY

    @property
    def note(self) -> str:
        return f"{SCORECARD_CAPTION}  Money in {self.currency}; response times in hours."

    @classmethod
    def read(cls, views: ReadModels, since: datetime | None, until: datetime | None,
             charts: bool) -> Scorecard:
        rows, total = scorecard_with_total(views, since, until)
        card = cls(rows, total, tuple(currencies(views)))
        if charts:
            card.charts = (per_day(views, "violations", since, until),
                           per_day(views, "lapses", since, until),
                           compensation_per_month(views, since, until))
            card.days = recorded_days(views, since, until)
        return card
