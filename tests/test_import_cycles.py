"""No import cycles in chainkit: every import statement counts, lazy and TYPE_CHECKING ones too.

The modules' import graph is read from their source (``ast``), not from what
happens to be imported at run time, so an import inside a function is an edge
like any other. A package's ``__init__`` re-exporting its children, and a
module importing a package it lives in, are not cycles of logic and are left
out (as ``/work/shared/tools/import_cycles.py`` does).
"""

from __future__ import annotations

import ast
from pathlib import Path

import chainkit

PACKAGE = Path(chainkit.__file__).parent


def _modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = name if path.name == "__init__.py" else name.rpartition(".")[0]
    if node.level:
        parts = base.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1])
        module = f"{base}.{node.module}" if node.module else base
    else:
        module = node.module or ""
    return [module, *(f"{module}.{alias.name}" for alias in node.names)]


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere in its source."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_init = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(name, path, node):
                if target not in modules or target == name:
                    continue
                if is_init and target.startswith(name + "."):
                    continue  # a package re-exporting its children
                if name.startswith(target + ".") and modules[target].name == "__init__.py":
                    continue  # a module importing a package it lives in
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        work = [(start, iter(sorted(graph[start])))]
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_chainkit_has_no_import_cycles() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50  # the whole package was read
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_a_lazy_import_cycle_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import f\n")
    (pkg / "a.py").write_text("from pkg.sub import b\n\ndef f():\n    return b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def g():\n    from ..a import f  # lazy\n    return f\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.sub.b"]]


def test_type_checking_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "x.py").write_text("from pkg import y\n")
    (pkg / "y.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.x import X\n"
    )
    assert cycles(import_graph(pkg)) == [["pkg.x", "pkg.y"]]


# The layers of ARCHITECTURE.md, bottom (0) to top; "left"/"right" are its two middle columns.
LAYERS: dict[str, tuple[int, str]] = {
    "errors": (0, ""),  # the bottom row: errors.py first, the rest may use it
    "_upstream": (1, ""),
    "_bridge": (1, ""),
    "_compat": (1, ""),
    "_unicode": (1, ""),
    "_binding": (1, ""),
    "models": (2, "left"),
    "trace": (2, "right"),
    "chains": (3, "left"),
    "callbacks": (3, "right"),
    "runners": (4, ""),
    "server": (5, ""),
    "debug": (5, ""),
    "notebook": (5, ""),
    "testing": (5, ""),
    "cli": (6, ""),
    "__main__": (7, ""),
}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_imports_point_down_the_layers_of_architecture_md() -> None:
    wrong = []
    for source, targets in import_graph(PACKAGE).items():
        if source == "chainkit" or source.endswith(".__main__"):
            continue  # the public API re-exports; a __main__ is a command line, on top
        for target in targets:
            a, b = _part(source), _part(target)
            assert a in LAYERS, f"{source}: add its layer to ARCHITECTURE.md and LAYERS"
            if b in (a, ""):
                continue
            (rank_a, column_a), (rank_b, column_b) = LAYERS[a], LAYERS[b]
            if rank_b >= rank_a or {column_a, column_b} == {"left", "right"}:
                wrong.append(f"{source} -> {target}")
    assert not wrong, "imports against the layers: " + ", ".join(sorted(wrong))


def test_the_local_model_imports_no_langchain_and_only_the_bottom_layer() -> None:
    graph = import_graph(PACKAGE)
    local = [
        m
        for m in graph
        if m.startswith("chainkit.models.local") and m != "chainkit.models.local.__main__"
    ]
    assert local
    for module in local:
        for target in graph[module]:
            assert target.startswith("chainkit.models.local") or LAYERS[_part(target)][0] <= 1, (
                f"{module} -> {target}"
            )
        tree = ast.parse(_modules(PACKAGE)[module].read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                names.append(getattr(node, "module", None) or "")
                assert not any(n.startswith("langchain") for n in names), module
