"""The pages' templates (`templates/`, Jinja2): every value a template writes is escaped
as HTML (ids, reasons and notes come from outside), and before that made visible
(`aftersales.cli.page_text.visible`: a control or bidirectional character shows as its
escape)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from aftersales.cli.human import local
from aftersales.cli.page_text import visible


def _finalize(value: Any) -> Any:
    """What a template writes of a value: text with its hidden characters made visible
    (markup the templates made themselves, a chart's, is theirs)."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value


_ENV = Environment(loader=PackageLoader("aftersales.cli", "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                   finalize=_finalize)


def render(template: str, **values: Any) -> str:
    return str(_ENV.get_template(template).render(**values))


def generated_at(at: datetime, zone: tzinfo) -> str:
    """When a page was written, to the second, in the business zone."""
    return local(at.replace(microsecond=0), zone)
