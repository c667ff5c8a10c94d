"""The import graph of a source tree, read from the AST, for the architecture tests.

Reading the source rather than importing it sees every import, including those that only run
inside a function or only for the type checker, and it names the file and line of each one, so
a broken rule can say exactly which import to change.

Each edge has a kind, because the rules differ in what they count:

- ``eager``: runs when the module is imported (the module body, including ``try`` and ``if``);
- ``lazy``: inside a function or method, runs when that is called;
- ``typing``: under ``if TYPE_CHECKING:``, never runs, but is still a dependency of meaning.

Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``; those implied parent
edges are left out, or every module would depend on the package root and everything would be
one cycle. ``from a.b import c`` points at ``a.b.c`` when ``c`` is a submodule, else at ``a.b``.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ALL_KINDS = frozenset({"eager", "lazy", "typing"})


@dataclass(frozen=True)
class Edge:
    """One import statement from a module of the tree to a module (ours or third-party)."""

    source: str
    target: str
    line: int
    kind: str

    def __str__(self) -> str:
        note = "" if self.kind == "eager" else f", {self.kind}"
        return f"{self.target} (line {self.line}{note})"


@dataclass
class Graph:
    """Modules of one package tree and the imports between them and to the outside."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, list[Edge]] = field(default_factory=dict)

    def out(self, module: str, kinds: Collection[str] = ALL_KINDS) -> list[Edge]:
        return [e for e in self.edges.get(module, []) if e.kind in kinds]

    def under(self, prefix: str) -> list[str]:
        """The modules that are ``prefix`` or inside it."""
        return sorted(m for m in self.modules if m == prefix or m.startswith(prefix + "."))


def module_name(path: Path, root: Path) -> str:
    """``root/pkg/sub/mod.py`` -> ``pkg.sub.mod``; a package's ``__init__.py`` names the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def build_graph(root: Path, package: str) -> Graph:
    """The import graph of ``root/package`` (``root`` is the folder that holds the package)."""
    graph = Graph()
    for path in sorted((root / package).rglob("*.py")):
        graph.modules[module_name(path, root)] = path
    for name, path in graph.modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph.edges[name] = [
            Edge(name, target, line, kind)
            for target, line, kind in _imports(tree, name, is_package, graph.modules)
        ]
    return graph


def _imports(
    tree: ast.Module, module: str, is_package: bool, known: Collection[str]
) -> Iterable[tuple[str, int, str]]:
    for node, kind in _walk(tree, "eager"):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield _deepest(alias.name, known), node.lineno, kind
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in known else _deepest(base, known)
                yield target, node.lineno, kind


def _walk(node: ast.AST, kind: str) -> Iterable[tuple[ast.AST, str]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, "lazy" if kind == "eager" else kind)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield statement, "typing"
                yield from _walk(statement, "typing")
            for statement in child.orelse:
                yield statement, kind
                yield from _walk(statement, kind)
        else:
            yield child, kind
            yield from _walk(child, kind)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _deepest(name: str, known: Collection[str]) -> str:
    """The longest prefix of ``name`` that is a module of the tree, else ``name`` itself."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return name


def find_cycles(graph: Graph, kinds: Collection[str] = ALL_KINDS) -> list[list[Edge]]:
    """One shortest cycle per strongly connected group of modules, as the edges that close it."""
    groups = _strongly_connected(graph, kinds)
    cycles = []
    for group in groups:
        start = min(group)
        path = _shortest_path(graph, start, lambda e, s=start: e.target == s, kinds, within=group)
        if path:
            cycles.append(path)
    return sorted(cycles, key=lambda c: c[0].source)


def _strongly_connected(graph: Graph, kinds: Collection[str]) -> list[set[str]]:
    """Tarjan's algorithm, iterative; groups of one count only with an import of itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def targets(m: str) -> list[str]:
        return [e.target for e in graph.out(m, kinds) if e.target in graph.modules]

    for root in graph.modules:
        if root in index:
            continue
        work = [(root, iter(targets(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(targets(child))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in targets(node):
                        groups.append(group)
    return groups


def _shortest_path(
    graph: Graph,
    start: str,
    arrived: Callable[[Edge], bool],
    kinds: Collection[str],
    within: Collection[str] | None = None,
) -> list[Edge] | None:
    """The fewest edges from ``start`` to an edge for which ``arrived`` holds (breadth first).

    Only modules of the tree are walked through, and only those in ``within`` when given.
    """
    queue: deque[tuple[str, list[Edge]]] = deque([(start, [])])
    seen = {start}
    while queue:
        module, path = queue.popleft()
        for edge in graph.out(module, kinds):
            if arrived(edge):
                return [*path, edge]
            nxt = edge.target
            if nxt in graph.modules and nxt not in seen and (within is None or nxt in within):
                seen.add(nxt)
                queue.append((nxt, [*path, edge]))
    return None


def import_chain(
    graph: Graph, start: str, forbidden: Callable[[str], bool], kinds: Collection[str]
) -> list[Edge] | None:
    """The shortest chain of imports from ``start`` to a module ``forbidden`` accepts, if any.

    The chain follows modules of the tree only: a third-party import is a dead end unless it is
    itself forbidden.
    """
    return _shortest_path(graph, start, lambda e: forbidden(e.target), kinds)


def describe(chain: list[Edge]) -> str:
    """``a -> b (line 3) -> c (line 9, lazy)``: where each step of a chain or cycle is made."""
    return " -> ".join([chain[0].source, *(str(e) for e in chain)])
