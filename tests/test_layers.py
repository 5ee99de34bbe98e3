"""The package layering holds: no circle among module-level imports, and the layers
below never import the layers above (signing and pki know nothing of rfc3161; the
ledger library knows nothing of the server)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = ("tsa_server", "ledger")


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a module imports: at load time, in TYPE_CHECKING blocks and inside
    functions alike (a lazy import still ties the two modules together)."""
    module, found = _module(path), set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in ROOTS}


def _graph() -> dict[str, set[str]]:
    files = [p for root in ROOTS for p in (REPO / root).rglob("*.py")]
    modules = {_module(p): p for p in files}
    return {m: {d for d in _imports(p) if d in modules and d != m} for m, p in modules.items()}


def test_no_import_circles() -> None:
    graph, index, low, stack, on_stack, circles = _graph(), {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_lower_layers_never_import_upper_ones() -> None:
    forbidden = {
        "tsa_server.signing": ("tsa_server.rfc3161", "tsa_server.web", "tsa_server.evidence"),
        "tsa_server.pki": ("tsa_server.rfc3161", "tsa_server.signing", "tsa_server.web"),
        "ledger": ("tsa_server",),
    }
    wrong = [
        f"{module} imports {dep}"
        for module, deps in _graph().items()
        for layer, above in forbidden.items()
        if module == layer or module.startswith(layer + ".")
        for dep in deps
        if dep.startswith(above)
    ]
    assert not wrong, wrong


def test_no_two_classes_share_a_name() -> None:
    """One name, one class (issue 14): a reader who meets `Signer` or `LedgerError`
    knows which one it is without looking at the import."""
    seen: dict[str, list[str]] = {}
    for root in ROOTS:
        for path in (REPO / root).rglob("*.py"):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef):
                    seen.setdefault(node.name, []).append(_module(path))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}
