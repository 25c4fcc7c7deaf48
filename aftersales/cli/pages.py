"""Two pages a person looks at, each one self-contained HTML file (inline CSS and SVG: no
script, no font, no request at view time):

- the scorecard (`aftersales report --format html`, `aftersales.cli.scorecard`): the
  merchant scorecard with its totals, violations and lapses per rule per day, the worst
  merchants, dispute-loss rates and the platform's compensation per month;
- an order's timeline (`aftersales history ORDER_ID --format html`,
  `aftersales.cli.timeline`): every event on a time axis in its actor's lane, every
  deadline as it stood (moved ones too) and what became of it, the timeouts at their
  instants, and the arbitration.

Templates are Jinja2's (`templates/`, `aftersales.cli.templating`), which escapes every
value it writes (merchant and order ids, reasons and notes come from outside) and shows
control characters as escapes.  The charts are SVG drawn from geometry computed here
(`aftersales.cli.charts`): a charting library would either need a script at view time
or draw text as paths, and the browser test reads every figure back from the page
(`data-*` attributes) to compare it with the read models and the status documents.
Values read as `aftersales.cli.human` says.
"""

from __future__ import annotations

from aftersales.cli.charts import stacked_columns
from aftersales.cli.deadlines import deadline_spans
from aftersales.cli.scorecard import page_columns, scorecard_page, table_head
from aftersales.cli.timeline import timeline_page

__all__ = ["deadline_spans", "page_columns", "scorecard_page", "stacked_columns",
           "table_head", "timeline_page"]
