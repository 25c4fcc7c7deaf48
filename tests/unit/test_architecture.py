"""The package's structure, read from its source: no import cycles; each layer imports only
the layers below it; the domain imports nothing of storage, the command line or SQLAlchemy
and reads no clock; development tools are loaded only on use, by the command line."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import aftersales
import projections

PACKAGE = Path(aftersales.__file__).parent
#: The write side (`aftersales`) and the read side (`projections`), side by side.
PACKAGES = (PACKAGE, Path(projections.__file__).parent)
OURS = ("aftersales", "projections")

#: Each layer and what it may import (besides itself, `aftersales.errors` and
#: `aftersales.settings`); docs/architecture.md draws the same.
LAYERS: dict[str, set[str]] = {
    "domain": set(),
    "runtime": set(),
    "storage": {"domain", "runtime"},
    "application": {"domain", "storage", "runtime"},
    "ingest": {"domain", "storage", "application", "runtime"},
    "feeds": {"domain", "storage", "application", "ingest", "runtime"},
    # The long-running services' HTTP, metrics and logs (serve-webhook, project --follow).
    "service": {"domain", "storage", "application", "feeds", "runtime"},
    # The composition root: the only module of `aftersales` that imports the read side.
    "cli": {"domain", "storage", "application", "projections", "ingest", "feeds", "runtime",
            "service"},
    "devtools": {"domain", "storage", "application", "ingest", "feeds", "runtime", "cli",
                 "service"},
    # The read side: the domain's events, and the store only through its reading port.
    "projections": {"domain", "runtime"},
}
EVERYWHERE = {"errors", "settings"}
#: All of `aftersales.storage` the read side may import: the reading port, the notifications
#: it returns, the chain's hashes (to check a folded history), and how to connect.
READING_PORT = {f"aftersales.storage.{m}" for m in (
    "reading", "port", "chain", "config", "connections", "retry")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts  # both side by side
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for root in PACKAGES for p in root.rglob("*.py")}


def resolve(name: str) -> str:
    """The module an import names (`from a.b import c`: `a.b.c` if that is a module)."""
    return name if name in modules() else name.rsplit(".", 1)[0]


@cache
def imports(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """The package's modules `module` imports: (when it is imported, later in a function).
    Imports for type checking only are left out."""
    tree = ast.parse(modules()[module].read_text())
    eager: set[str] = set()
    lazy: set[str] = set()

    package = module if modules()[module].name == "__init__.py" else module.rsplit(".", 1)[0]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in {
                    "TYPE_CHECKING", "typing.TYPE_CHECKING"}:
                for other in child.orelse:  # what runs when not type checking
                    visit(ast.Module(body=[other], type_ignores=[]), in_function)
                continue
            found = eager if not in_function else lazy
            if isinstance(child, ast.Import):
                found.update(resolve(a.name) for a in child.names
                             if a.name.startswith(OURS))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from the module's own package up
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, *([base] if base else [])])
                if base.startswith(OURS):
                    found.update(resolve(f"{base}.{a.name}") for a in child.names)
            visit(child, in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda))

    visit(tree, False)
    return frozenset(eager - {module}), frozenset(lazy - {module})


def layer(module: str) -> str | None:
    """`domain` for `aftersales.domain.order`, `projections` for any module of the read
    side; None for the package `aftersales` itself."""
    parts = module.split(".")
    if parts[0] == "projections":
        return "projections"
    return parts[1] if len(parts) > 1 else None


def test_no_import_cycles() -> None:
    graph = {m: imports(m)[0] for m in modules()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(
                    [*path[path.index(n):], n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for m in modules():
        own = layer(m)
        if own not in LAYERS:
            continue
        eager, lazy = imports(m)
        for n in eager | lazy:
            other = layer(n)
            if own == "cli" and other == "devtools" and n not in eager:
                continue  # loaded on use (the next test)
            if own == "projections" and n in READING_PORT:
                continue
            if other != own and other not in LAYERS[own] | EVERYWHERE:
                wrong.append(f"{m} imports {n}")
    assert wrong == []


def test_the_domain_is_pure() -> None:
    """Rules, deadlines and money import nothing of storage, the command line or SQLAlchemy
    (nor the settings), and read no clock: business time comes in as data."""
    for m, path in modules().items():
        if layer(m) != "domain":
            continue
        eager, lazy = imports(m)
        assert {n for n in eager | lazy if layer(n) != "domain"} <= {"aftersales.errors"}, m
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            modules_named = ([a.name for a in node.names] if isinstance(node, ast.Import)
                             else [node.module or ""] if isinstance(node, ast.ImportFrom)
                             else [])
            assert not any(x.split(".")[0] in {"sqlalchemy", "sqlite3", "psycopg", "time"}
                           for x in modules_named), (m, modules_named)
            if isinstance(node, ast.Attribute) and node.attr in {
                    "now", "utcnow", "today", "monotonic", "perf_counter", "time_ns"}:
                raise AssertionError(f"{m} reads a clock: {ast.unparse(node)}")


def test_development_tools_are_loaded_only_on_use_by_the_command_line() -> None:
    for m in modules():
        if layer(m) == "devtools":
            continue
        eager, lazy = imports(m)
        assert not {n for n in eager if layer(n) == "devtools"}, m
        if layer(m) != "cli":
            assert not {n for n in lazy if layer(n) == "devtools"}, m


def test_nothing_of_the_write_side_but_the_command_line_imports_the_read_side() -> None:
    """The layout rule: `aftersales/` (domain, application, storage, ingest, feeds, service)
    never imports `projections`; the command line, the composition root, hands the read
    side the ledger through the reading port; `projections` imports of `aftersales` only the
    domain, the errors, the settings, process helpers and the reading port."""
    wrong = []
    for m in modules():
        eager, lazy = imports(m)
        side = m.split(".")[0]
        for n in eager | lazy:
            if side == "aftersales" and layer(m) != "cli" and n.startswith("projections"):
                wrong.append(f"{m} imports {n}")
            if side == "projections" and n.startswith("aftersales.") and not (
                    layer(n) in {"domain", "runtime", *EVERYWHERE} or n in READING_PORT):
                wrong.append(f"{m} imports {n}")
    assert wrong == []
    assert {m for m in modules() if m.startswith("projections.")} >= {
        "projections.schema", "projections.runner", "projections.live", "projections.rebuild",
        "projections.queries"}


def test_nothing_of_the_product_imports_the_command_line() -> None:
    for m in modules():
        if layer(m) in {"cli", "devtools"} or m == "aftersales.__main__":
            continue
        eager, lazy = imports(m)
        assert not {n for n in eager | lazy if layer(n) == "cli"}, m


def test_importing_the_domain_loads_nothing_but_the_domain_at_run_time() -> None:
    """The package's public names are imported on first use, so that the domain, imported
    in a fresh interpreter, brings in neither the rest of the package nor a store."""
    import subprocess
    import sys

    code = ("import sys, aftersales.domain.order, aftersales.domain.steps; "
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.split()
    ours = {m for m in loaded if m.startswith("aftersales.")}
    assert {layer(m) for m in ours} <= {"domain", "errors"}, sorted(ours)
    assert not {m.split(".")[0] for m in loaded} & {"sqlalchemy", "sqlite3", "psycopg"}
    assert aftersales.Ledger.__name__ == "Ledger"  # and the public names are still there
