"""The house reads like the data flow: stage packages import only earlier stages, no module
imports itself back through others, and functions stay short.

Read from the source with :mod:`ast` (every import counts: at the top, inside functions
and under ``TYPE_CHECKING``), so a late import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pricing"

#: The stages in data-flow order (docs/architecture.md). A module may import its own
#: stage and earlier ones only. The foundation is what every stage uses: errors, statuses,
#: settings, how results print, where parts run (and the allocator's thresholds for them).
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "pricing._version",
        "pricing.errors",
        "pricing.statuses",
        "pricing.display",
        "pricing.config",
        "pricing.cluster",
        "pricing.memory",
    ),
    ("pricing.inputs",),
    ("pricing.estimation",),
    ("pricing.market",),
    ("pricing.decisions",),
    ("pricing.store",),
    ("pricing.report",),
    ("pricing.runs",),
    ("pricing.bench",),
    ("pricing.cli",),
)

#: Longest function body, in lines, that needs no reason (STYLE.md: "keep modules small").
MAX_FUNCTION_LINES = 80
#: How a longer function says why: a docstring line starting with this.
LENGTH_REASON = "Length:"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """The pricing modules ``name`` imports (``from pkg import module`` is the module)."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pricing"):
            module = node.module or ""
            submodules = {f"{module}.{a.name}" for a in node.names} & MODULES.keys()
            found |= submodules or ({module} & MODULES.keys())
    return found - {name}


def _layer(name: str) -> int:
    for i, layer in enumerate(LAYERS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in layer):
            return i
    raise AssertionError(f"{name} is in no layer: add it to LAYERS (and docs/architecture.md)")


GRAPH = {name: _imports(name) for name in MODULES if name != "pricing"}


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_a_module_imports_only_its_stage_and_earlier_ones(name: str) -> None:
    """The root package is the public facade (it re-exports every stage) and is left out."""
    later = sorted(t for t in GRAPH[name] if t != "pricing" and _layer(t) > _layer(name))
    assert not later, f"{name} (stage {_layer(name)}) imports later stages: {later}"


def test_there_are_no_import_circles() -> None:
    """Tarjan's strongly connected components of the module graph are all single modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, set()) - {"pricing"}:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def _functions() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for name, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield f"{name}.{node.name} (line {node.lineno})", node


def test_functions_are_short_or_say_why() -> None:
    long = []
    for label, node in _functions():
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        doc = ast.get_docstring(node) or ""
        explained = any(line.strip().startswith(LENGTH_REASON) for line in doc.splitlines())
        if lines > MAX_FUNCTION_LINES and not explained:
            long.append(f"{label}: {lines} lines")
    assert not long, (
        f"functions over {MAX_FUNCTION_LINES} lines without a '{LENGTH_REASON}' line in "
        f"their docstring: {long}"
    )


def test_the_layers_name_every_package() -> None:
    """Every stage package is in LAYERS, and every LAYERS entry exists."""
    packages = {n for n, p in MODULES.items() if p.name == "__init__.py" and n != "pricing"}
    named = {prefix for layer in LAYERS for prefix in layer}
    assert packages <= named, sorted(packages - named)
    assert named <= MODULES.keys(), sorted(named - MODULES.keys())


def test_nothing_in_the_package_touches_sys_path() -> None:
    """The package finds its own modules as the package's (the benchmark stages are
    ``pricing.bench.*``), never by putting a folder on ``sys.path``: it must run as
    installed."""
    touching = []
    for name, path in sorted(MODULES.items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            attribute = (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            )
            imported = (
                isinstance(node, ast.ImportFrom)
                and node.module == "sys"
                and any(a.name == "path" for a in node.names)
            )
            if attribute or imported:
                touching.append(f"{name} (line {getattr(node, 'lineno', '?')})")
    assert not touching, f"sys.path used in {touching}"
