"""The few lines a run ends with: what was found, how well it does, its estimates, where the
outputs are and what to do next (from ``results.json``'s content)."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import Any, Mapping

from ..runner.monitor import readable

__all__ = ["OUTPUT_FILES", "run_summary"]

#: The files of an output folder, in the order the summary names them.
OUTPUT_FILES = ("arch.h5", "arch.png", "arch.json", "normal.png", "reduce.png", "weights.h5",
                "results.json", "config.json", "log.txt")  # fmt: skip


def _percent(error: float) -> str:
    return f"{100 * error:.2f}%"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def run_summary(results: Mapping[str, Any], output: str | Path, width: int = 100) -> str:
    """The end-of-run summary of ``results`` (a run's ``results.json``) in ``output``.

    Example (a DARTS search)::

        finished: DartsSearcher on darts, 1 epoch (62 steps) in 3.0 min
          architecture: normal/edge_2_0 max_pool_3x3, normal/edge_2_1 sep_conv_3x3, ...
          test error 15.60% (final epoch); best valid error 15.20% at epoch 1 (test 15.60%)
          estimates: 47,146 parameters, flops_macs 497,376, memory_total_bytes 74,456
          outputs in log/darts: arch.h5 arch.png arch.json ... (tensorboard --logdir log/darts)
          next: retrain it with -a Trainer --set network.genotype=log/darts/arch.h5
    """
    out = Path(output)
    epochs = int(results.get("epochs", 0))
    lines = [
        f"finished: {results.get('algorithm', '?')} on {results.get('search_space') or '?'}, "
        f"{epochs} epoch{'s' if epochs != 1 else ''} ({results.get('steps', 0):,} steps) in "
        f"{_minutes(float(results.get('wall_time_s', 0.0)))}"
    ]
    arch = results.get("architecture") or {}
    if arch:
        probs = results.get("arch_probabilities") or {}
        items = []
        for label, name in arch.items():
            p = probs.get(label, {}).get(name)
            items.append(f"{label} {name}" + (f" ({p:.2f})" if p is not None else ""))
        text = textwrap.fill(", ".join(items), width, initial_indent="  architecture: ",
                             subsequent_indent="    ")  # fmt: skip
        lines.append(text)
    final, best = results.get("final") or {}, results.get("best") or {}
    if "test_error" in final:
        text = f"  test error {_percent(final['test_error'])} (final epoch)"
        if "valid_error" in best:
            best_test = _percent(best.get("test_error", 0.0))
            text += (f"; best valid error {_percent(best['valid_error'])} at epoch "
                     f"{best.get('epoch', '?')} (test {best_test})")  # fmt: skip
        lines.append(text)
    estimates = []
    if results.get("num_parameters") is not None:
        estimates.append(f"{readable(results['num_parameters'])} parameters")
    estimates += [f"{k} {readable(v)}" for k, v in (results.get("hardware") or {}).items()]
    if estimates:
        lines.append(textwrap.fill(", ".join(estimates), width, initial_indent="  estimates: ",
                                   subsequent_indent="    "))  # fmt: skip
    files = [name for name in OUTPUT_FILES if (out / name).exists()]
    if (out / "tensorboard").is_dir():
        files.append(f"tensorboard/ (tensorboard --logdir {shlex.quote(str(out))})")
    lines.append(f"  outputs in {out}: {' '.join(files)}")
    if arch and (out / "arch.h5").exists():
        genotype = shlex.quote(str(out / "arch.h5"))
        lines.append(f"  next: retrain it with -a Trainer --set network.genotype={genotype}")
    elif (out / "weights.h5").exists():
        lines.append(f"  next: nnabla-nas export -o {shlex.quote(str(out))} --format onnx")
    return "\n".join(lines)
