"""Rendering of an architecture with graphviz (``arch.png``).

A search space describes what is drawn through ``model.arch_graph(input_shape)``, which returns an
:class:`ArchGraph` (nodes with a label, a kind and an output shape; edges between node names).
This module only turns such a graph into DOT and PNG, so every space reuses it.

The PNG needs graphviz's ``dot`` binary (Debian: ``apt-get install graphviz``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import NnasError
from .utils.io import atomic_path

__all__ = [
    "ArchEdge",
    "ArchGraph",
    "ArchNode",
    "architecture_dot",
    "architecture_image",
    "cell_dot",
    "draw_architecture",
    "draw_cell",
    "kernel_of",
    "probability_image",
]

logger = logging.getLogger(__name__)

#: Fill colours by kernel size; other kernels use ``_DEFAULT_FILL``.
KERNEL_COLORS = {1: "#f2f2f2", 3: "#a6cee3", 5: "#b2df8a", 7: "#fdbf6f"}
_DEFAULT_FILL = "#cab2d6"
_KIND_STYLE = {
    "input": {"shape": "oval", "style": "filled", "fillcolor": "#ffffff"},
    "output": {"shape": "oval", "style": "filled", "fillcolor": "#ffffff"},
    "stem": {"shape": "box", "style": "filled,rounded", "fillcolor": "#e0e0e0"},
    "head": {"shape": "box", "style": "filled,rounded", "fillcolor": "#e0e0e0"},
    "skip": {"shape": "box", "style": "dashed,rounded", "color": "grey55", "fontcolor": "grey45"},
}


@dataclass(frozen=True)
class ArchNode:
    """A node of the drawing.

    Attributes:
        name: unique id within the graph.
        label: the text shown (e.g. ``"MB6 5x5"``).
        kind: ``input``, ``stem``, ``op`` (a chosen candidate), ``skip`` (a removed block),
            ``head`` or ``output``.
        shape: the node's output tensor shape without the batch axis (e.g. ``(C, H, W)``), or None.
        kernel: the kernel size that picks the fill colour of ``op`` nodes, or None.
        group: nodes of the same group are drawn side by side (one row), e.g. one stage of a
            network; None draws the node on its own row.
    """

    name: str
    label: str
    kind: str = "op"
    shape: tuple[int, ...] | None = None
    kernel: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class ArchEdge:
    """An edge; ``shape`` (the tensor carried) is drawn as its label when given. A ``skip``
    edge (e.g. a skip connection beside the main chain) is drawn dashed and does not pull the
    layout."""

    src: str
    dst: str
    shape: tuple[int, ...] | None = None
    skip: bool = False


@dataclass
class ArchGraph:
    """Nodes and edges of an architecture drawing."""

    nodes: list[ArchNode] = field(default_factory=list)
    edges: list[ArchEdge] = field(default_factory=list)

    def add(self, node: ArchNode, after: str | None = None) -> ArchNode:
        """Appends ``node``, linked from node ``after`` (carrying ``after``'s output shape)."""
        self.nodes.append(node)
        if after is not None:
            src = next(n for n in self.nodes if n.name == after)
            self.edges.append(ArchEdge(after, node.name, src.shape))
        return node

    @classmethod
    def chain(cls, nodes: Sequence[ArchNode]) -> ArchGraph:
        """A linear graph through ``nodes`` in order."""
        graph = cls()
        prev = None
        for node in nodes:
            graph.add(node, after=prev)
            prev = node.name
        return graph


def kernel_of(name: str) -> int | None:
    """The kernel size written in a candidate name (``"MB6 5x5"`` -> 5), or None."""
    match = re.search(r"(\d+)x(\d+)", name)
    return int(match.group(1)) if match and match.group(1) == match.group(2) else None


def format_shape(shape: Sequence[int] | None) -> str:
    """``(16, 14, 14)`` -> ``"16×14×14"``."""
    return "" if shape is None else "×".join(str(int(s)) for s in shape)


def _genotype_graph(genotype: Any) -> ArchGraph:
    """A chain of a genotype's choices in order (no shapes: the space is not built)."""
    nodes = [ArchNode("input", "input", "input")]
    for i, (label, name) in enumerate(genotype.choices.items()):
        skip = name in ("skip_connect", "identity", "none", "skip")
        nodes.append(
            ArchNode(
                f"c{i}",
                f"{label}\\n{'skip' if skip else name}",
                "skip" if skip else "op",
                kernel=kernel_of(name),
            )
        )
    nodes.append(ArchNode("output", "output", "output"))
    return ArchGraph.chain(nodes)


def _as_graph(
    obj: Any,
    input_shape: Sequence[int] | None,
    architecture: Mapping[str, int] | None = None,
    probabilities: Mapping[str, Any] | None = None,
) -> ArchGraph:
    if isinstance(obj, ArchGraph):
        return obj
    if hasattr(obj, "arch_graph"):
        if input_shape is None:
            raise ValueError("input_shape is needed to draw a model")
        return obj.arch_graph(tuple(input_shape), dict(architecture or {}), probabilities)
    if hasattr(obj, "choices") and hasattr(obj, "space"):
        return _genotype_graph(obj)
    raise TypeError(f"cannot draw {type(obj).__name__}: expected a Model, Genotype or ArchGraph")


def architecture_dot(
    model_or_genotype: Any,
    input_shape: Sequence[int] | None = None,
    rankdir: str = "TB",
    architecture: Mapping[str, int] | None = None,
    probabilities: Mapping[str, Any] | None = None,
) -> Any:
    """The architecture as a ``graphviz.Digraph`` (its ``.source`` is the DOT text).

    Args:
        model_or_genotype: a space's Model (drawn by its ``arch_graph``, with tensor shapes),
            a Genotype (its choices in order), or an ArchGraph.
        input_shape: the input shape without batch axis (e.g. ``(3, 32, 32)``); needed for a Model.
        rankdir: graphviz direction, ``TB`` (top-down: groups are rows) or ``LR`` (left to
            right: groups are columns).
        architecture: for a supernet Model, the architecture drawn (``label -> index``); a
            fixed network needs none.
        probabilities: the searcher's probabilities of that architecture's choices, for spaces
            that draw from them (DARTS' derived cells).
    """
    import graphviz

    graph = _as_graph(model_or_genotype, input_shape, architecture, probabilities)
    dot = graphviz.Digraph("architecture", format="png")
    dot.attr(rankdir=rankdir, fontname="Helvetica")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    groups: dict[str, Any] = {}
    for node in graph.nodes:
        attrs = dict(_KIND_STYLE.get(node.kind, {}))
        if node.kind == "op":
            attrs = {
                "shape": "box",
                "style": "filled,rounded",
                "fillcolor": KERNEL_COLORS.get(node.kernel, _DEFAULT_FILL),
            }
        label = node.label
        if node.kind == "input" and node.shape is not None:
            label = f"{label}\\n{format_shape(node.shape)}"
        target = dot
        if node.group is not None:
            if node.group not in groups:
                groups[node.group] = graphviz.Digraph(name=f"group_{len(groups)}")
                groups[node.group].attr(rank="same")
            target = groups[node.group]
        target.node(node.name, label, **attrs)
    for sub in groups.values():
        dot.subgraph(sub)
    # Rows start under each other (not where the previous row ended): heavy invisible edges
    # between row leaders, and no pull from the edges that wrap from one row to the next.
    group_of = {n.name: (n.group if n.group is not None else n.name) for n in graph.nodes}
    leaders = list(dict.fromkeys(group_of.values()))
    leader_node = {g: next(n.name for n in graph.nodes if group_of[n.name] == g) for g in leaders}
    for a, b in zip(leaders, leaders[1:]):
        dot.edge(leader_node[a], leader_node[b], style="invis", weight="100")
    for edge in graph.edges:
        wraps = group_of[edge.src] != group_of[edge.dst]
        attrs = {"weight": "0"} if wraps or edge.skip else {}
        if edge.skip:
            attrs.update(style="dashed", color="grey40", constraint="false")
        dot.edge(edge.src, edge.dst, label=format_shape(edge.shape), **attrs)
    return dot


def _require_dot() -> None:
    if shutil.which("dot") is None:
        raise NnasError(
            "graphviz's 'dot' binary is not installed, so the architecture cannot be drawn; "
            "install it with 'apt-get install graphviz' (Debian/Ubuntu) or 'brew install graphviz'"
        )


def draw_architecture(
    model_or_genotype: Any,
    path_png: str | os.PathLike,
    input_shape: Sequence[int] | None = None,
    rankdir: str = "TB",
    architecture: Mapping[str, int] | None = None,
    probabilities: Mapping[str, Any] | None = None,
) -> Path:
    """Renders the architecture to a PNG file, atomically.

    See :func:`architecture_dot` for the arguments.

    Raises:
        NnasError: graphviz's ``dot`` binary is missing (the message says how to install it).
    """
    _require_dot()
    dot = architecture_dot(model_or_genotype, input_shape, rankdir, architecture, probabilities)
    path = _render_png(dot, path_png)
    logger.debug("architecture drawn to %s", path)
    return path


def _render_png(dot: Any, path_png: str | os.PathLike) -> Path:
    png = dot.pipe(format="png")
    path = Path(path_png)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(png)
    return path


def cell_dot(
    nodes: Sequence[Sequence[tuple[str, int]]], concat: Sequence[int], name: str = "cell"
) -> Any:
    """A cell (DARTS-style) as a ``graphviz.Digraph``, laid out left to right.

    The nodes carry the numbers of ``arch.json`` and of the choice labels (``edge_<to>_<from>``):
    the cell inputs 0 (``c_{k-2}``) and 1 (``c_{k-1}``), the intermediate nodes 2, 3, ..., and
    the output ``c_{k}`` that concatenates ``concat``; every edge is labelled with its operation.

    Args:
        nodes: per intermediate node (2, 3, ...), its incoming edges ``(operation, input
            number)``.
        concat: the node numbers concatenated into the output.
        name: the graph's name (e.g. ``normal``, ``reduce``).
    """
    import graphviz

    dot = graphviz.Digraph(name, format="png")
    dot.attr(rankdir="LR", fontname="Helvetica")
    dot.attr("node", fontname="Helvetica", fontsize="11", style="filled", shape="rect")
    dot.attr("edge", fontname="Helvetica", fontsize="10")
    dot.node("0", "0: c_{k-2}", fillcolor="darkseagreen2")
    dot.node("1", "1: c_{k-1}", fillcolor="darkseagreen2")
    for i in range(len(nodes)):
        dot.node(str(i + 2), fillcolor="lightblue")
    dot.node("out", "c_{k}", fillcolor="palegoldenrod")
    for i, edges in enumerate(nodes):
        for op, j in edges:
            dot.edge(str(j), str(i + 2), label=op, fillcolor="gray")
    for j in concat:
        dot.edge(str(j), "out", fillcolor="gray")
    return dot


def draw_cell(
    nodes: Sequence[Sequence[tuple[str, int]]],
    concat: Sequence[int],
    path_png: str | os.PathLike,
    name: str = "cell",
) -> Path:
    """Renders a cell (see :func:`cell_dot`) to a PNG file, atomically.

    Raises:
        NnasError: graphviz's ``dot`` binary is missing (the message says how to install it).
    """
    _require_dot()
    path = _render_png(cell_dot(nodes, concat, name), path_png)
    logger.debug("cell %s drawn to %s", name, path)
    return path


def architecture_image(png_path: str | os.PathLike) -> np.ndarray:
    """A PNG as an ``(H, W, 3)`` uint8 array (e.g. for TensorBoard's ``add_image``)."""
    from PIL import Image

    with Image.open(png_path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # FreeType (Pillow >= 10.1)
    except (TypeError, OSError):
        return ImageFont.load_default()


def probability_image(probabilities: Mapping[str, Mapping[str, float]],
                      title: str = "") -> np.ndarray:  # fmt: skip
    """A heat map of a searcher's distribution: one row per choice (its label), one cell per
    candidate with its name and probability, darker for more probable, the argmax framed.

    Args:
        probabilities: ``label -> {candidate: probability}`` (e.g. ``results.json``'s
            ``arch_probabilities``).
        title: a line above the table (e.g. the epoch).

    Returns:
        an ``(H, W, 3)`` uint8 image.
    """
    from PIL import Image, ImageDraw

    font, pad, row_h = _font(12), 6, 22
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def width(text: str) -> int:
        return int(probe.textlength(text, font=font))

    rows = [(label, list(probs.items())) for label, probs in probabilities.items()]
    label_w = max([width(label) for label, _ in rows] + [width("choice")]) + 2 * pad
    cell_w = max([width(f"{name} 0.000") for _, cands in rows for name, _ in cands] + [40])
    cell_w += 2 * pad
    columns = max([len(cands) for _, cands in rows] + [1])
    top = row_h if title else 0
    img = Image.new("RGB", (label_w + columns * cell_w + 1, top + len(rows) * row_h + 1), "white")
    draw = ImageDraw.Draw(img)
    if title:
        draw.text((pad, 4), title, fill=(0, 0, 0), font=font)
    for r, (label, cands) in enumerate(rows):
        y = top + r * row_h
        draw.text((pad, y + 4), label, fill=(0, 0, 0), font=font)
        best = max(range(len(cands)), key=lambda i: cands[i][1]) if cands else -1
        for c, (name, p) in enumerate(cands):
            x = label_w + c * cell_w
            shade = float(np.sqrt(min(max(p, 0.0), 1.0)))  # sqrt: small differences show
            fill = tuple(int(round(255 + shade * (v - 255))) for v in (8, 69, 148))
            draw.rectangle([x, y, x + cell_w, y + row_h], fill=fill, outline=(200, 200, 200))
            if c == best:
                draw.rectangle([x + 1, y + 1, x + cell_w - 1, y + row_h - 1],
                               outline=(220, 30, 30), width=2)  # fmt: skip
            ink = (255, 255, 255) if shade > 0.6 else (0, 0, 0)
            draw.text((x + pad, y + 4), f"{name} {p:.3f}", fill=ink, font=font)
    return np.asarray(img, dtype=np.uint8)
