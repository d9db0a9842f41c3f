"""`make demo`'s script end to end, shrunk with --set (the real demo's figures are in the docs)."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import ROOT


def test_demo_script_searches_retrains_and_reports(tmp_path):
    env = dict(os.environ, DEMO_OUT=str(tmp_path / "demo"), DEMO_RANDOM="1")
    shrink = ["--set", "epoch=1", "--set", "warmup=0", "--set", "train_portion=0.2",
              "--set", "valid_portion=0.8", "--set", "print_frequency=100"]  # fmt: skip
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/demo.sh"), *shrink],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "chosen architecture" in out and "probability movement: mean max-probability" in out
    assert "searched:  test accuracy" in out and "random 1:  test accuracy" in out
    assert "searched - mean of random" in out
    for label in ("blocks/0", "blocks/5"):
        assert label in out
    assert (tmp_path / "demo" / "random_1/train/results.json").is_file()
    for name in ("search/arch.h5", "search/arch.png", "train/weights.h5"):
        assert (tmp_path / "demo" / name).is_file(), name
        assert f"{tmp_path / 'demo'}/{name}" in out
