"""The browser tests' fixtures: one headless chromium for the session, a tab per test, and
the demo's stores (written once by `aftersales demo` on SQLite files: the pages read them,
never write)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Browser, chromium
from tests.e2e.test_cli import run


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path,
                                     args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Browser]:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  java_script_enabled=True)
    yield Browser(context.new_page())
    context.close()


def _demo(folder: Path, *options: str) -> str:
    url = f"sqlite:///{folder / 'demo.db'}"
    made = run("demo", "--db", url, *options, cwd=folder)
    assert made.returncode == 0, made.stderr
    return url


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default demo's store: 3,000 orders over 42 days, every deadline rule of the
    rules table met and missed."""
    return _demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def douyin_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Douyin demo's store: one shop's feed (its pushes and order export)."""
    return _demo(tmp_path_factory.mktemp("douyin"), "--platform", "douyin")
