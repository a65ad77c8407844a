"""An ASCII drawing of a Runnable's graph, without extra packages.

LangChain's ``Graph.draw_ascii()`` needs the ``grandalf`` package; this draws
the same graph (``chain.get_graph()``) in layers: each node in a box, a
node's layer is its longest distance from the input, edges that skip layers
pass through as ``|``, and fan-out/fan-in are drawn as one bar per group of
connected nodes.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.runnables.graph import Graph

__all__ = ["draw_ascii"]

_GAP = 3


class _Item:
    __slots__ = ("center", "key", "label", "left", "width")

    def __init__(self, key: str, label: str | None) -> None:
        self.key = key
        self.label = label  # None: an edge passing through this layer
        self.width = len(label) + 4 if label is not None else 1
        self.left = 0
        self.center = 0


def _layers(graph: Graph) -> tuple[list[list[_Item]], list[tuple[str, str]]]:
    """Nodes in layers (longest path), with pass-through items for long edges."""
    order = list(graph.nodes)
    succ: dict[str, list[str]] = defaultdict(list)
    indegree = dict.fromkeys(order, 0)
    for edge in graph.edges:
        succ[edge.source].append(edge.target)
        indegree[edge.target] += 1
    layer = dict.fromkeys(order, 0)
    queue = [n for n in order if indegree[n] == 0]
    seen: set[str] = set()
    while queue:
        node = queue.pop(0)
        seen.add(node)
        for nxt in succ[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                queue.append(nxt)
    items: dict[str, _Item] = {n: _Item(n, graph.nodes[n].name) for n in order}
    rows: list[list[_Item]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for node in order:
        rows[layer[node]].append(items[node])
    links: list[tuple[str, str]] = []
    for edge in graph.edges:
        start, end = layer[edge.source], layer[edge.target]
        previous = edge.source
        for mid in range(start + 1, end):
            dummy = _Item(f"{edge.source}->{edge.target}@{mid}", None)
            rows[mid].append(dummy)
            links.append((previous, dummy.key))
            previous = dummy.key
        links.append((previous, edge.target))
    # order each layer by the mean position of its predecessors (fewer crossings)
    preds: dict[str, list[str]] = defaultdict(list)
    for source, target in links:
        preds[target].append(source)
    for upper, lower in itertools.pairwise(rows):
        index = {item.key: i for i, item in enumerate(upper)}

        def barycenter(item: _Item, index: dict[str, int] = index) -> float:
            ps = [index[p] for p in preds[item.key] if p in index]
            return sum(ps) / len(ps) if ps else float("inf")

        lower.sort(key=barycenter)
    return rows, links


def draw_ascii(graph: Graph) -> str:
    """``graph`` (from ``runnable.get_graph()``) as boxes and lines."""
    if not graph.nodes:
        return ""
    rows, links = _layers(graph)
    _place(rows, links)
    canvas = max(item.left + item.width for row in rows for item in row)
    lines: list[str] = []
    for depth, row in enumerate(rows):
        top, mid = [" "] * canvas, [" "] * canvas
        for item in row:
            if item.label is None:
                top[item.center] = mid[item.center] = "|"
                continue
            border = "+" + "-" * (item.width - 2) + "+"
            top[item.left : item.left + item.width] = border
            mid[item.left : item.left + item.width] = f"| {item.label} |"
        lines.extend(["".join(top), "".join(mid), "".join(top)])
        if depth + 1 < len(rows):
            lines.extend(_connectors(row, rows[depth + 1], links, canvas))
    return "\n".join(line.rstrip() for line in lines)


def _place(rows: list[list[_Item]], links: list[tuple[str, str]]) -> None:
    """Columns for every item: under its predecessors, without overlaps, then shifted to 0."""
    preds: dict[str, list[str]] = defaultdict(list)
    for source, target in links:
        preds[target].append(source)
    centers: dict[str, int] = {}
    for row in rows:
        desired = []
        for item in row:
            ps = [centers[p] for p in preds[item.key] if p in centers]
            desired.append(round(sum(ps) / len(ps)) if ps else 0)
        x = None
        for item, want in zip(row, desired, strict=True):
            left = want - (item.width - 1) // 2
            item.left = left if x is None else max(left, x)
            x = item.left + item.width + _GAP
        # balance the row around where its items wanted to be
        offsets = [i.left + (i.width - 1) // 2 - w for i, w in zip(row, desired, strict=True)]
        drift = (offsets[0] + offsets[-1]) // 2
        for item in row:
            item.left -= drift
            item.center = item.left + (item.width - 1) // 2
            centers[item.key] = item.center
    shift = min(item.left for row in rows for item in row)
    for row in rows:
        for item in row:
            item.left -= shift
            item.center -= shift


def _connectors(
    upper: list[_Item], lower: list[_Item], links: list[tuple[str, str]], canvas: int
) -> list[str]:
    """Three lines joining ``upper`` to ``lower``: stems, bars, arrows."""
    by_key: dict[str, _Item] = {i.key: i for i in (*upper, *lower)}
    upper_keys = {i.key for i in upper}
    lower_keys = {i.key for i in lower}
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    edges = [(s, t) for s, t in links if s in upper_keys and t in lower_keys]
    for source, target in edges:
        parent[find(source)] = find(target)
    groups: dict[str, tuple[set[int], set[int]]] = {}
    for source, target in edges:
        ups, downs = groups.setdefault(find(source), (set(), set()))
        ups.add(by_key[source].center)
        downs.add(by_key[target].center)
    stems, bars, arrows = [" "] * canvas, [" "] * canvas, [" "] * canvas
    for ups, downs in groups.values():
        for x in ups:
            stems[x] = "|"
        for x in downs:
            arrows[x] = "v" if by_key_label(lower, x) else "|"
        columns = ups | downs
        low, high = min(columns), max(columns)
        if low == high:
            bars[low] = "|"
            continue
        for x in range(low, high + 1):
            bars[x] = "-"
        for x in columns:
            bars[x] = "+"
    return ["".join(stems), "".join(bars), "".join(arrows)]


def by_key_label(row: list[_Item], center: int) -> Any:
    """Whether the item of ``row`` centred at ``center`` is a node (not a pass-through)."""
    return any(item.center == center and item.label is not None for item in row)
