"""What the benchmarks share: the issue's configurations, a CIFAR-size dataset, runs built from an
experiment dict as the command line builds them, peak memory and the load average.

The issue's configurations (``CONFIGS``), CIFAR-size inputs (3x32x32):

- ``proxyless``: ``examples/mobilenet_cifar10_search.json`` (the seed tutorial's MobileNetV2
  space: 6 candidates + skip per block) with REINFORCE (10 samples), batches of 64, one warm-up
  epoch and one search epoch;
- ``darts``: the ``darts`` space with 16 channels, 8 cells, 4 nodes, multiplier 4, stem
  multiplier 3, shared cells, batches of 32, no warm-up, one epoch, first order.

Their data: a CIFAR-10 archive in the official format with random images (the figures are times
and memory; accuracy is not measured), written once per size under the system's temporary
folder, or ``--data-dir`` with a real one.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks run as scripts: the repository's packages
    sys.path.insert(0, str(ROOT))

#: Training / test images of each configuration's default dataset: 4 weight and 4 architecture
#: batches of 64 for ProxylessNAS (train_portion 0.5), 2 and 2 batches of 32 for DARTS.
DATA_SIZES = {"proxyless": (520, 128), "darts": (130, 64)}


def _proxyless() -> dict[str, Any]:
    raw = json.loads((ROOT / "examples/mobilenet_cifar10_search.json").read_text())
    raw.update(epoch=1, warmup=1, batch_size_train=64, batch_size_valid=64, mini_batch_train=64,
               mini_batch_valid=64, train_portion=0.5, print_frequency=1,
               searcher={"estimator": "reinforce", "num_samples": 10})  # fmt: skip
    return raw


def _darts() -> dict[str, Any]:
    raw = json.loads((ROOT / "examples/darts_search.json").read_text())
    raw.update(epoch=1, warmup=0, batch_size_train=32, batch_size_valid=32, mini_batch_train=32,
               mini_batch_valid=32, train_portion=0.5, print_frequency=1,
               searcher={"order": 1})  # fmt: skip
    return raw


#: name -> (algorithm, experiment dict factory).
CONFIGS = {"proxyless": ("ProxylessNasSearcher", _proxyless), "darts": ("DartsSearcher", _darts)}


def load() -> str:
    """The 1, 5 and 15 minute load averages, for printing beside a figure."""
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def cifar_folder(train: int, test: int, seed: int = 0) -> Path:
    """A folder holding ``cifar-10-python.tar.gz`` with ``train`` training and ``test`` test
    images (random pixels, labels cycling), written on first use."""
    from tests.datasets import cifar_batches, write_cifar

    folder = Path(tempfile.gettempdir()) / "nnabla_nas_bench" / f"cifar_{train}_{test}_{seed}"
    if not (folder / "cifar-10-python.tar.gz").exists():
        if train % 5:
            raise SystemExit(f"--train must be a multiple of 5 (CIFAR's 5 batches), got {train}")
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        write_cifar(tmp, cifar_batches(train // 5, test, seed), archive=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process wrote it meanwhile
            pass
    return folder


def experiment(
    name: str,
    overrides: list[str] = (),
    data_dir: str | None = None,
    train: int | None = None,
    test: int | None = None,
) -> tuple[str, dict]:
    """The algorithm and experiment dict of configuration ``name``, with ``--set``-style
    ``key.path=value`` overrides and its dataset."""
    from nnabla_nas.cli import apply_override

    algorithm, factory = CONFIGS[name]
    raw = factory()
    for assignment in overrides:
        apply_override(raw, assignment)
    if data_dir is None:
        n_train, n_test = DATA_SIZES[name]
        data_dir = str(cifar_folder(train or n_train, test or n_test))
    raw["data_dir"] = data_dir
    return algorithm, raw


def build_run(algorithm: str, raw: dict, output: str | os.PathLike, comm: Any = None) -> Any:
    """The algorithm of ``raw`` built as the command line builds it (not yet run)."""
    import numpy as np

    from nnabla_nas.assemble import (
        build_algorithm,
        build_data,
        build_model,
        build_regularizers,
        load_data,
    )
    from nnabla_nas.config import ExperimentConfig, parse_dataclass
    from nnabla_nas.distributed import SingleProcess
    from nnabla_nas.runner import ALGORITHMS

    comm = comm if comm is not None else SingleProcess()
    algo = ALGORITHMS.get(algorithm)
    cfg = ExperimentConfig.from_dict(copy.deepcopy(raw))
    options = parse_dataclass(algo.Config, cfg.searcher, "searcher")
    model = build_model(cfg, None, np.random.RandomState(cfg.seed))
    data = build_data(cfg, load_data(cfg), search=algo.search, num_shards=comm.size,
                      shard=comm.rank)  # fmt: skip
    return build_algorithm(cfg, algo, model, data, output, options, build_regularizers(cfg), comm)


def peak_rss_mib() -> float:
    """The peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def rss_mib() -> float:
    """The current resident memory of this process (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> float:
    """Resets the peak resident memory to the current one (Linux >= 4.0); returns it (MiB)."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        print("warning: cannot reset the peak RSS: it includes the set-up", file=sys.stderr)
    return peak_rss_mib()


def mpirun() -> str:
    """The MPI launcher of this environment (MPICH's wheel): ``mpiexec.gforker`` (it listens on
    no socket on one machine), else ``mpirun``, else the one on PATH."""
    import shutil

    here = Path(sys.executable).parent
    found = next((here / n for n in ("mpiexec.gforker", "mpirun") if (here / n).exists()), None)
    return str(found) if found is not None else shutil.which("mpirun") or "mpirun"


def loop_of(algorithm: str, raw: dict, output: str | os.PathLike, comm: Any = None) -> Any:
    """The :class:`~nnabla_nas.runner.loop.Loop` of ``raw``'s run, set up (its algorithm's
    ``setup`` called, its optimizers built): drive its steps with ``loop.algo.train_step`` and
    ``loop.algo.arch_step`` on ``loop.steps.split(x, y, mini)`` batches."""
    return build_run(algorithm, raw, output, comm).loop()


def plain_mobilenet(x: Any, model: Any, arch: dict[str, int], num_classes: int = 10) -> Any:
    """The child ``arch`` of a ``mobilenet`` space written with plain
    ``nnabla.parametric_functions`` (same shapes, fresh parameters in the current scope)."""
    import nnabla as nn
    import nnabla.functions as F
    import nnabla.parametric_functions as PF

    from nnabla_nas.contrib.mobilenet import SKIP, parse_candidate

    cfg = model.cfg
    act = F.relu6 if cfg.activation == "relu6" else F.relu

    def conv_bn(h, out_c, k, stride, group=1, relu=True, name=""):
        with nn.parameter_scope(name):
            h = PF.convolution(h, out_c, (k, k), pad=(k // 2, k // 2), stride=(stride, stride),
                               group=group, with_bias=False)  # fmt: skip
            h = PF.batch_normalization(h, batch_stat=True)
        return act(h) if relu else h

    def inverted_residual(h, out_c, stride, expand, k, name):
        in_c = h.shape[1]
        hidden = int(round(in_c * expand))
        y = h
        if expand != 1:
            y = conv_bn(y, hidden, 1, 1, name=f"{name}/exp")
        y = conv_bn(y, hidden, k, stride, group=hidden, name=f"{name}/dw")
        y = conv_bn(y, out_c, 1, 1, relu=False, name=f"{name}/proj")
        return y + h if stride == 1 and in_c == out_c else y

    h = conv_bn(x, model._stem_channels, 3, cfg.stem_stride, name="stem")
    if cfg.first_block:
        h = inverted_residual(h, model._first_channels, 1, 1, 3, "first")
    for i, (c_in, out_c, stride, names) in enumerate(model._specs):
        name = names[arch[f"blocks/{i}"]] if len(names) > 1 else names[0]
        if name == SKIP:
            if stride != 1 or c_in != out_c:
                h = conv_bn(h, out_c, 1, stride, relu=False, name=f"b{i}/skip")
            continue
        expand, k = parse_candidate(name)
        h = inverted_residual(h, out_c, stride, expand, k, f"b{i}")
    h = conv_bn(h, model._last_channels, 1, 1, name="last")
    h = F.global_average_pooling(h)
    with nn.parameter_scope("fc"):
        return PF.affine(h, num_classes)


def plain_step(loss: Any, lr: float = 0.01, params: dict | None = None) -> Any:
    """``step()``: one forward + backward + Momentum update of ``loss`` over ``params`` (default:
    the trained parameters of the current scope): the engine floor the benchmarks compare with
    (set the inputs' ``d`` first)."""
    import nnabla as nn
    import nnabla.solvers as S

    solver = S.Momentum(lr, 0.9)
    solver.set_parameters(params if params is not None else nn.get_parameters(grad_only=True))

    def step() -> None:
        solver.zero_grad()
        loss.forward(clear_no_need_grad=True)
        loss.backward(clear_buffer=True)
        solver.update()

    return step
