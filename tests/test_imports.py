"""No import cycles among noisevision's modules.

The graph has an edge A -> B for every `import` or `from … import` in module A that names module B
of the package (`from pkg import name` is an edge to pkg.name when that is a module, else to pkg),
read from the source with `ast`, without importing anything. A package's `__init__` importing its
own submodules is an edge like any other, so a submodule importing back its package's `__init__`
(which imports it) closes a cycle; merely being inside a package is no edge.

Two graphs are checked: the module-level imports (a cycle there fails or depends on import order),
and every import, those inside functions included: an import deferred into a function to dodge a
cycle still makes the two modules depend on each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import noisevision

PACKAGE = Path(noisevision.__file__).resolve().parent

# Cycles through deferred imports still to untangle, each as its sorted modules (a ratchet: the test
# fails when one of them is gone, so that it is struck off here).
DEFERRED_CYCLES_LEFT: set[tuple[str, ...]] = set()


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Module name -> source file of every module of the package under `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _module_level(tree: ast.Module) -> list[ast.stmt]:
    """The statements that run on import: the module's own, and those under its top-level
    if / try (e.g. `try: import fcntl`), not those inside functions or classes."""
    todo, found = list(tree.body), []
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If | ast.Try):
            todo += [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            todo += [s for handler in getattr(node, "handlers", []) for s in handler.body]
    return found


def import_graph(every_import: bool, root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at module level, or anywhere)."""
    known = modules(root)
    graph = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        nodes = ast.walk(tree) if every_import else _module_level(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in known}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per extra dot
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([base] if base else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in known:
                        targets.add(full)
                    elif base in known:
                        targets.add(base)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected groups of more than one module (Tarjan), each as its sorted names."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                found.add(tuple(sorted(group)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_cycle_among_module_level_imports() -> None:
    assert cycles(import_graph(every_import=False)) == set()


def test_no_cycle_through_imports_inside_functions_either() -> None:
    found = cycles(import_graph(every_import=True))
    assert found - DEFERRED_CYCLES_LEFT == set(), "new import cycles (imports inside functions count)"
    assert DEFERRED_CYCLES_LEFT <= found, "a listed cycle is gone: strike it off DEFERRED_CYCLES_LEFT"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


@pytest.mark.parametrize(
    ("files", "module_level", "anywhere"),
    [
        # a library module whose function reaches back into a module that imports it (models <-> export)
        (
            {
                "__init__.py": "",
                "models.py": "def read():\n    from pkg.export import x\n",
                "export.py": "from pkg.models import read\n",
            },
            set(),
            {("pkg.export", "pkg.models")},
        ),
        # a submodule importing back its package's __init__, which imports it
        (
            {
                "__init__.py": "",
                "sub/__init__.py": "from pkg.sub.a import f\n",
                "sub/a.py": "from pkg.sub import g\n",
            },
            {("pkg.sub", "pkg.sub.a")},
            {("pkg.sub", "pkg.sub.a")},
        ),
        # a package importing its submodules, which import each other one way: no cycle
        (
            {
                "__init__.py": "",
                "sub/__init__.py": "from pkg.sub import a, b\n",
                "sub/a.py": "x = 1\n",
                "sub/b.py": "from . import a\nfrom .a import x\n",
            },
            set(),
            set(),
        ),
    ],
)
def test_the_graph_sees_the_cycles_that_matter(tmp_path, files, module_level, anywhere) -> None:
    root = _write(tmp_path, files)
    assert cycles(import_graph(False, root)) == module_level
    assert cycles(import_graph(True, root)) == anywhere
