"""Drawing the argmax architecture: DOT content, PNG validity, refusal without ``dot``."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from nnabla_nas import visualize
from nnabla_nas.contrib.mobilenet import MobileNetConfig, MobileNetSpace
from nnabla_nas.errors import NnasError
from nnabla_nas.genotype import Genotype
from nnabla_nas.visualize import (
    KERNEL_COLORS,
    architecture_dot,
    architecture_image,
    draw_architecture,
    kernel_of,
)

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' not installed")


#: The architecture drawn: blocks/0 MB6 5x5, blocks/1 skip_connect, blocks/2 MB3 7x7,
#: blocks/3 MB3 3x3.
ARCH = {"blocks/0": 1, "blocks/1": 3, "blocks/2": 2, "blocks/3": 0}


@pytest.fixture
def model() -> MobileNetSpace:
    cfg = MobileNetConfig(
        num_classes=10,
        settings=[[16, 2, 2], [24, 2, 2]],
        candidates=["MB3 3x3", "MB6 5x5", "MB3 7x7"],
        width_mult=0.25,
        in_channels=1,
        mode="sample",
    )
    return MobileNetSpace(cfg, rng=np.random.RandomState(0))


def test_kernel_of():
    assert kernel_of("MB6 5x5") == 5 and kernel_of("sep_conv_3x3") == 3
    assert kernel_of("skip_connect") is None and kernel_of("conv 3x5") is None


def test_graph_shapes(model):
    graph = model.arch_graph((1, 28, 28), ARCH)
    shapes = {n.name: n.shape for n in graph.nodes}
    # 28 -/2 (stem)-> 14 -/2 (row 1)-> 7 -/2 (row 2)-> 4.
    assert shapes["stem"] == (8, 14, 14) and shapes["first"] == (8, 14, 14)
    assert [shapes[f"b{i}"] for i in range(4)] == [(8, 7, 7), (8, 7, 7), (8, 4, 4), (8, 4, 4)]
    assert shapes["head"] == (1280, 1, 1) and shapes["classifier"] == (10,)
    assert [n.kind for n in graph.nodes if n.name.startswith("b")] == ["op", "skip", "op", "op"]
    assert len(graph.edges) == len(graph.nodes) - 1


def test_dot_source_draws_the_given_architecture_not_the_last_sample(model):
    # A forward in sample mode may pick other paths; the drawing follows the architecture.
    import nnabla as nn

    x = nn.Variable((1, 1, 28, 28))
    model(x)
    src = architecture_dot(model, (1, 28, 28), architecture=ARCH).source
    for name in ("MB6 5x5", "MB3 7x7", "MB3 3x3", "skip"):
        assert name in src
    assert "8×7×7" in src and "1×28×28" in src and "1280×1×1" in src
    lines = src.splitlines()
    skip_line = next(li for li in lines if li.strip().startswith("b1 "))
    assert "dashed" in skip_line
    assert KERNEL_COLORS[5] in next(li for li in lines if li.strip().startswith("b0 "))
    assert KERNEL_COLORS[7] in next(li for li in lines if li.strip().startswith("b2 "))
    assert KERNEL_COLORS[3] in next(li for li in lines if li.strip().startswith("b3 "))
    assert len({KERNEL_COLORS[3], KERNEL_COLORS[5], KERNEL_COLORS[7]}) == 3


def test_genotype_is_drawn_as_its_choices():
    g = Genotype("mobilenet", {"blocks/0": "MB6 5x5", "blocks/1": "skip_connect"})
    src = architecture_dot(g).source
    assert "blocks/0\\nMB6 5x5" in src and "blocks/1\\nskip" in src


@needs_dot
def test_png(tmp_path, model):
    path = tmp_path / "arch.png"
    assert draw_architecture(model, path, (1, 28, 28), architecture=ARCH) == path
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["arch.png"]  # the temp file was renamed
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 100 and img.height > 300
    arr = architecture_image(path)
    assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3
    assert arr.shape[:2] == (img.height, img.width)
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 10  # text, lines, fill colours


def test_missing_dot_is_a_clear_error(tmp_path, model, monkeypatch):
    monkeypatch.setattr(visualize.shutil, "which", lambda name: None)
    with pytest.raises(NnasError, match="apt-get install graphviz"):
        draw_architecture(model, tmp_path / "arch.png", (1, 28, 28), architecture=ARCH)
    assert not os.listdir(tmp_path)
