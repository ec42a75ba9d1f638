"""The architecture, checked on the source: which part may import which (docs/architecture.md), vendor
SDKs only at the edges, and no import cycle between the project's modules — counting imports inside
functions too, since a cycle hidden in a function is still one a reader has to untangle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("memberships", "billing", "integrations", "portal", "medspa")
# The arrows docs/architecture.md draws: a part may import itself and these.
ALLOWED = {
    "memberships": set(),                                   # the core: Django and the standard library
    "billing": {"memberships"},
    "integrations": {"memberships", "billing"},
    "portal": {"memberships", "billing", "integrations"},   # the member's side: pages over the doors
    "medspa": {"memberships", "billing", "integrations", "portal"},   # wiring: settings, urls, schedules, health
}
VENDOR_SDKS = {"stripe", "twilio", "requests", "square", "squareup"}


def _modules() -> dict[str, Path]:
    found = {}
    for part in PARTS:
        for path in (ROOT / part).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            names = list(path.relative_to(ROOT).with_suffix("").parts)
            if names[-1] == "__init__":
                names = names[:-1]
            found[".".join(names)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the module, at any depth."""
    found = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in MODULES else base, node.lineno))
    return found


def _project_module(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_each_part_imports_only_what_the_architecture_allows():
    wrong = []
    for module, path in MODULES.items():
        part = module.split(".")[0]
        for name, line in _imports(module, path):
            target = name.split(".")[0]
            if target in PARTS and target != part and target not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} {part} -> {name}")
    assert wrong == []


def test_vendor_sdks_are_imported_only_by_the_edges():
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for module, path in MODULES.items() if not module.startswith("integrations")
             for name, line in _imports(module, path) if name.split(".")[0] in VENDOR_SDKS]
    assert wrong == []


def test_no_import_cycles():
    edges = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for name, _ in _imports(module, path):
            target = _project_module(name)
            # A package's own __init__ runs before its modules: importing it from inside is no cycle.
            if target and target != module and not module.startswith(target + "."):
                edges[module].add(target)
    cycles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert cycles == []


def _long(limit_lines: int):
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit_lines:
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"


# Where the doc says why (docs/architecture.md, "Sizes"): the demo practice's story is one script.
LONG_ALLOWED = ("billing/management/commands/seed_demo.py",)


def test_modules_and_functions_stay_small():
    big = [f"{path.relative_to(ROOT)} ({n} lines)" for path in MODULES.values()
           if (n := len(path.read_text().splitlines())) > 400 and not str(path).endswith(LONG_ALLOWED)]
    long = [item for item in _long(60) if not item.startswith(LONG_ALLOWED)]
    assert (big, long) == ([], [])
